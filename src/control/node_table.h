// The cluster's node table: every node that ever joined, alive or dead. The one place where it
// changes: with a TableStore, each registration and death is written through ("nodes", by index).
//
// Registration assigns a node index (never reused) and an incarnation; a node that lost the
// control service rejoins under its index if it is still known and alive. A node is declared
// dead when its connection closes or when it has been silent longer than the heartbeat timeout;
// a dead node never comes back under the same index. After a head restart (Restore), the nodes
// that were alive are kept alive until a deadline, for them to reconnect under their index.
//
// Ownership: owned by the ControlServer. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "control/table_store.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class NodeTable {
 public:
  using Clock = std::chrono::steady_clock;

  explicit NodeTable(TableStore* store = nullptr) : store_(store) {}
  // Reloads the table from the store; nodes that were alive count as alive until `rejoin_by`
  // (unless they register again before it). Returns how many such nodes await their rejoin.
  Result<size_t> Restore(Clock::time_point rejoin_by);

  // Registers a new node (info.node_index == 0) or a rejoining one. Returns the stored entry.
  Result<const protocol::NodeInfo*> Register(protocol::NodeInfo info, Clock::time_point now);
  // Records that the node was heard from (any message counts).
  void Heard(uint32_t index, Clock::time_point now);
  // Stores a node's available (and total, when not empty) resources; false if the node is
  // unknown or dead.
  bool UpdateResources(uint32_t index, protocol::ResourceMap available, protocol::ResourceMap total);
  // Declares the node dead; returns false if it already was (or is unknown).
  bool MarkDead(uint32_t index, std::string reason);
  // Alive nodes not heard from within `timeout`.
  std::vector<uint32_t> Silent(Clock::time_point now, std::chrono::milliseconds timeout) const;

  // Restored as alive after a head restart, and not rejoined (nor declared dead) yet.
  bool AwaitingRejoin(uint32_t index) const;
  size_t num_awaiting_rejoin() const;
  const protocol::NodeInfo* Find(uint32_t index) const;
  const protocol::NodeInfo* FindById(const std::string& node_id) const;
  std::vector<protocol::NodeInfo> All() const;
  size_t num_alive() const;

 private:
  struct Entry {
    protocol::NodeInfo info;
    Clock::time_point last_heard;
    Clock::time_point rejoin_by{};  // restored and not yet rejoined: silent after this
  };
  void Persist(const Entry& e);

  TableStore* store_;
  std::map<uint32_t, Entry> nodes_;
  uint32_t next_index_ = 1;
  uint64_t next_incarnation_ = 1;
};

}  // namespace quanta
