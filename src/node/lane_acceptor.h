// The actor's node's side of opening an actor lane (protocol/lane_messages.h): reads the
// LaneHello from a socket the peer listener has authenticated (channel "lane") and hands the
// socket to the worker hosting the actor it names, or closes it (the caller's node then sends
// its calls the node way). It remembers which callers' nodes have lanes to which worker, so
// that a worker's LaneAdopt can be checked against them.
//
// Ownership: owned by the NodeServer; owns the sockets until they are handed over or closed.
// Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/status.h"
#include "net/event_loop.h"
#include "protocol/lane_messages.h"

namespace quanta {

class LaneAcceptor {
 public:
  // Hands `fd` to the actor's worker (the callee keeps nothing: the acceptor closes its copy);
  // returns that worker's client id, or an error that refuses the lane.
  using Attach = std::function<Result<uint64_t>(const protocol::LaneHello&, int fd)>;
  struct Stats {
    uint64_t attached = 0, refused = 0;
  };

  LaneAcceptor(net::EventLoop* loop, Attach attach, std::chrono::milliseconds hello_timeout = std::chrono::seconds(5))
      : loop_(loop), attach_(std::move(attach)), hello_timeout_(hello_timeout) {}
  ~LaneAcceptor();
  LaneAcceptor(const LaneAcceptor&) = delete;
  LaneAcceptor& operator=(const LaneAcceptor&) = delete;

  // An authenticated lane socket (takes ownership of `fd`).
  void OnLaneChannel(int fd, const std::string& peer);
  // Did `caller_node` get a lane to the worker `worker_client`?
  bool Attached(uint64_t worker_client, uint32_t caller_node) const;
  // The worker went away: its lanes went with it.
  void ForgetWorker(uint64_t worker_client) { attached_.erase(worker_client); }
  const Stats& stats() const { return stats_; }
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    uint64_t serial = 0;
    std::string peer;
    std::string hello;  // bytes read so far (at most LaneHello::kSize)
  };
  void OnReadable(int fd);
  void Drop(int fd, const std::string& why);

  net::EventLoop* loop_;
  Attach attach_;
  std::chrono::milliseconds hello_timeout_;
  std::unordered_map<int, Pending> pending_;
  std::unordered_map<uint64_t, std::unordered_set<uint32_t>> attached_;
  uint64_t next_serial_ = 1;
  Stats stats_;
};

}  // namespace quanta
