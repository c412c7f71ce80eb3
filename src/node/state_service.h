// What an observer may learn about this node — its processes, objects, log files (and a bounded
// slice of one), its host's CPU and memory — and the relay of such questions to other nodes,
// so that a tool connected to any node sees the whole cluster (quanta.util.state, the
// dashboard). Protocol: protocol/state_messages.h.
//
// A question about another node goes to it over the peer channel; its answer comes back on the
// peer's channel to us and is routed to the asking client by our relay id. A relay fails with
// a clear error when the node is not reachable, dies, or has not answered within the relay
// timeout; at most kMaxPending are in flight. Log files are read only by plain name inside the
// node's log folder (no path, no symlink, regular files only), at most kMaxRead bytes at a time.
//
// Ownership: owned by the NodeServer; reads the components through the Sources it is given.
// Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "net/event_loop.h"
#include "protocol/state_messages.h"

namespace quanta {

class ClientRegistry;
class WorkerDispatcher;
class WorkerPool;

class StateService {
 public:
  static constexpr size_t kMaxPending = 1024;
  static constexpr uint64_t kMaxRead = 4u << 20;
  static constexpr uint64_t kDefaultRead = 64u << 10;

  struct Options {
    std::string log_dir;
    std::chrono::milliseconds relay_timeout{10000};
    std::string proc_dir = "/proc";  // where host counters are read (a test points it elsewhere)
  };
  struct Sources {
    std::function<uint32_t()> local_index;
    std::function<protocol::ProcessList()> processes;
    std::function<protocol::StoreStatsReply()> objects;
    // Counters of the node itself (object store use, processes), added to the host's.
    std::function<std::vector<std::pair<std::string, int64_t>>()> node_counters;
    // Sends a query (or a reply) to a peer; false if it cannot be reached at all.
    std::function<bool(uint32_t node, const protocol::NodeStateQuery&)> query_peer;
    std::function<void(uint32_t node, const protocol::NodeStateReply&)> reply_peer;
    std::function<void(uint64_t client, const protocol::NodeStateReply&)> reply_client;
  };

  StateService(net::EventLoop* loop, Options options, Sources sources);

  void OnClientQuery(uint64_t client, const protocol::NodeStateQuery& query);
  void OnPeerQuery(uint32_t from, const protocol::NodeStateQuery& query);
  void OnPeerReply(uint32_t from, protocol::NodeStateReply reply);
  // Fails the relays waiting on a node that died or cannot be reached.
  void OnNodeGone(uint32_t node, const std::string& why);
  size_t num_pending() const { return pending_.size(); }

  // This node's answer to `query` (request id and node index filled in).
  protocol::NodeStateReply Answer(const protocol::NodeStateQuery& query) const;

 private:
  struct Pending {
    uint64_t client = 0;
    uint64_t their_id = 0;  // the client's request id
    uint32_t node = 0;
  };
  void Fail(uint64_t relay_id, const std::string& why);
  protocol::NodeStateReply ListLogs() const;
  protocol::NodeStateReply ReadLog(const protocol::NodeStateQuery& query) const;
  protocol::NodeStateReply HostStats() const;

  net::EventLoop* loop_;
  Options options_;
  Sources sources_;
  uint64_t next_relay_ = 1;
  std::unordered_map<uint64_t, Pending> pending_;
};

// True for a plain file name (no '/', not "." or "..", no NUL, at most 255 bytes).
bool IsPlainFileName(const std::string& name);

// The drivers, workers and observers connected to a node, as an observer sees them.
protocol::ProcessList DescribeProcesses(ClientRegistry& clients, WorkerDispatcher& dispatcher,
                                        const WorkerPool& pool);

}  // namespace quanta
