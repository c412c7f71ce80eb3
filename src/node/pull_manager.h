// Brings the bytes of objects stored on other nodes into this node's store (docs/cluster-design.md §7).
//
// EnsureLocal reserves space in the store, asks one location for the bytes (PullObject) and has
// the TransferService receive them straight into the reserved space; once every chunk checked
// out the copy is sealed (a secondary copy: evictable under memory pressure) and the owner is
// told where it is. There is at most one pull per object, however many readers wait for it. A
// location that fails (no copy any more, a broken channel, a bad checksum, silence past the
// deadline) is replaced by the next one; with none left the readers get ObjectLostError. A
// location whose attempt broke without a refusal (its channel closed, it fell silent) while the
// cluster still counts it alive is asked again after a pause, for a bounded time: most often it
// is dying, and the pull must not report the object lost before this node has heard of the
// death (until then its owner still lists that copy and would not rebuild the object). A pull
// that finds the store full waits for space for a while, then fails with the store's reason.
//
// The other half: a PullObject from a peer pins the local copy (restoring it if spilled) and
// streams it; the pin is released when the send is done.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "node/cluster_view.h"
#include "node/object_directory.h"
#include "node/peer_manager.h"
#include "object_store/shared_store.h"
#include "protocol/task_event_messages.h"
#include "transfer/transfer_service.h"

namespace quanta {

class PullManager {
 public:
  using Done = std::function<void(const Status&)>;

  PullManager(net::EventLoop* loop, SharedStore* store, ObjectDirectory* directory, PeerManager* peers,
              TransferService* transfer, const ClusterView* view);

  // Runs `done` once the object's `size` bytes are in this node's store (at once if they are),
  // trying `locations` first and then the locations the directory knows.
  void EnsureLocal(const ObjectID& id, uint64_t size, std::vector<uint32_t> locations, Done done);
  bool InProgress(const ObjectID& id) const { return pulls_.count(id) > 0; }
  // Told of every completed pull (object, bytes, source, this node, when asked and sealed):
  // the NodeServer records them as transfer events for the timeline.
  using Pulled = std::function<void(const protocol::TransferEvent&)>;
  void set_on_pulled(Pulled on_pulled) { on_pulled_ = std::move(on_pulled); }

  // Location side.
  void OnPullRequest(uint32_t from, const protocol::PullObject& msg);
  void OnPullFailed(uint32_t from, const protocol::PullFailed& msg);
  // From the TransferService.
  void OnReceived(uint64_t transfer_id, const Status& result);
  void OnSent(uint64_t send_id, const Status& result);
  void OnNodeDead(uint32_t node);

  struct Stats {
    uint64_t pulls_started = 0, pulls_done = 0, pulls_failed = 0, retries = 0, bytes_pulled = 0;
    uint64_t sends = 0, bytes_served = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Pull {
    uint64_t size = 0;
    std::vector<uint32_t> candidates;
    size_t next = 0;
    bool refreshed = false;     // asked the directory for more locations already
    uint32_t source = 0;
    uint64_t transfer_id = 0;   // of the attempt in flight (0: none)
    int64_t asked_us = 0;       // wall clock when the attempt in flight was asked for
    int waits_for_space = 0;
    std::string last_error;
    std::string abandon_reason;  // why this node abandoned the attempt in flight (its real cause)
    bool refused = false;        // the attempt in flight was refused by its source (PullFailed)
    std::vector<uint32_t> broken;  // sources whose attempt broke while the view counted them alive
    std::chrono::steady_clock::time_point first_broken;  // when the first of them broke (bounds the wait)
    std::vector<Done> waiters;
  };
  void Attempt(const ObjectID& id);
  void Finish(const ObjectID& id, const Status& result);

  net::EventLoop* loop_;
  SharedStore* store_;
  ObjectDirectory* directory_;
  PeerManager* peers_;
  TransferService* transfer_;
  const ClusterView* view_;
  std::unordered_map<ObjectID, Pull, ObjectIDHash> pulls_;
  std::unordered_map<uint64_t, ObjectID> by_transfer_;
  std::unordered_map<uint64_t, ObjectID> sends_;  // send id -> object pinned for it
  uint64_t next_transfer_ = 1;
  uint64_t next_send_ = 1;
  Stats stats_;
  Pulled on_pulled_;
};

}  // namespace quanta
