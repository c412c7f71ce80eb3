// Objects across nodes: who borrows what, where the copies are, and the ordering rules that
// keep distributed reference counts safe (docs/cluster-design.md §4-5, §7).
//
// Borrower side: the first reference to an object another node owns creates a borrowed entry
// in the ObjectTable; this class registers it with the owner (AddBorrower, acknowledged by
// BorrowAck) and unregisters it when the entry goes (RemoveBorrower). It asks the owner for the
// value or the locations of the bytes (SubscribeObject -> ObjectInfo) when someone here needs
// them. An owner that never had the id (or freed it) answers "unknown": the entry is sealed with
// ObjectLostError so readers fail fast.
//
// Owner side: counts each AddBorrower as one reference (per message, so an Add/Remove pair that
// crosses a later Add stays consistent), remembers the nodes holding copies (the primary, made
// by the task, and secondary ones pulled since), answers subscriptions when the object is
// sealed, and tells every location to drop its copy when the object is freed.
//
// The barrier (rule 2 of the design): a message that lets another node drop a reference —
// RemoveBorrower, a TaskResult, a HandOffDone — is sent only once every borrow registration
// issued before it has been acknowledged. DeferRelease queues such sends.
//
// Ownership: owned by the NodeServer; sends through the PeerManager, changes counts through the
// ObjectManager. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "node/cluster_view.h"
#include "node/peer_manager.h"
#include "protocol/peer_messages.h"

namespace quanta {

class ObjectManager;

class ObjectDirectory {
 public:
  ObjectDirectory(ObjectManager* objects, PeerManager* peers, const ClusterView* view);

  void set_local_index(uint32_t index) { local_ = index; }
  uint32_t local_index() const { return local_; }
  static uint32_t OwnerOf(const ObjectID& id) { return static_cast<uint32_t>(id.Creator() >> 32); }

  // ---- borrower side (called by the ObjectManager)
  void OnBorrowStarted(const ObjectID& id);
  // The borrowed entry is gone (its count reached zero).
  void OnBorrowEnded(const ObjectID& id);
  // Someone here needs the value or bytes of a borrowed, unsealed object.
  void NeedValue(const ObjectID& id);
  // The copies the owner named are gone: ask it again (it may rebuild the object).
  void Resubscribe(const ObjectID& id);
  void OnBorrowAck(uint32_t from, const protocol::BorrowAck& msg);
  void OnObjectInfo(uint32_t from, protocol::ObjectInfo msg);

  // ---- owner side
  void OnAddBorrower(uint32_t from, const std::vector<ObjectID>& ids);
  void OnRemoveBorrower(uint32_t from, const std::vector<ObjectID>& ids);
  void OnSubscribeObject(uint32_t from, const std::vector<ObjectID>& ids);
  void OnOwnedSealed(const ObjectID& id);
  void OnOwnedFreed(const ObjectID& id);
  // The object's primary copy is on `node` (it ran the task that made it).
  void SetPrimary(const ObjectID& id, uint32_t node);

  // ---- copies, on any node
  void OnAddLocation(uint32_t from, const std::vector<ObjectID>& ids);
  void OnRemoveLocation(uint32_t from, const std::vector<ObjectID>& ids);
  // This node now holds (or no longer holds) a copy; tells the owner.
  void CopyAdded(const ObjectID& id);
  void CopyDropped(const ObjectID& id);
  // Nodes known to hold the bytes (not this one), primary first.
  std::vector<uint32_t> LocationsOf(const ObjectID& id) const;
  // Locations learnt from elsewhere (a forwarded task's arguments).
  void NoteLocations(const ObjectID& id, const std::vector<uint32_t>& nodes);

  // ---- the barrier
  void DeferRelease(std::function<void()> send);
  size_t pending_registrations() const { return pending_seqs_.size(); }

  // Sends what this iteration batched (end of every loop iteration).
  void Flush();
  // A node is gone: its borrows end, its copies are gone, borrows from it are lost.
  void OnNodeDead(uint32_t node);

  struct Stats {
    uint64_t borrows_registered = 0, borrows_released = 0, frees_sent = 0, subscriptions = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Owned {
    std::map<uint32_t, int> borrowers;  // node -> AddBorrower messages not yet removed
    std::set<uint32_t> locations;       // other nodes holding a copy
    uint32_t primary = 0;
    std::vector<uint32_t> waiting;      // subscribed before it was sealed
  };
  struct Borrowed {
    bool subscribed = false;
    std::vector<uint32_t> locations;
  };
  void Queue(std::unordered_map<uint32_t, std::vector<ObjectID>>& batch, uint32_t node, const ObjectID& id) {
    batch[node].push_back(id);
  }
  void SendInfo(uint32_t to, const ObjectID& id);
  void RunDeferred();

  ObjectManager* objects_;
  PeerManager* peers_;
  const ClusterView* view_;
  uint32_t local_ = 0;
  std::vector<ObjectID> orphaned_;  // borrows of ids whose owner is not (or no longer) alive
  std::unordered_map<ObjectID, Owned, ObjectIDHash> owned_;
  std::unordered_map<ObjectID, Borrowed, ObjectIDHash> borrowed_;
  // The barrier: registrations sent and not yet acknowledged, by sequence.
  uint64_t next_seq_ = 1;
  std::unordered_map<ObjectID, std::deque<uint64_t>, ObjectIDHash> pending_;
  std::set<uint64_t> pending_seqs_;
  std::deque<std::pair<uint64_t, std::function<void()>>> deferred_;
  // Batched per destination until Flush.
  std::unordered_map<uint32_t, std::vector<ObjectID>> add_borrower_, remove_borrower_, subscribe_, free_,
      add_location_, remove_location_;
  Stats stats_;
};

}  // namespace quanta
