// The node's objects: reference counts, values, subscriptions and the shared-memory store.
//
// Wraps the ObjectTable (counts and inline values) and the SharedStore (large values) and keeps
// what each local client holds, so a client's references and read pins vanish with it. It
// pushes a value to every subscribed client once it is sealed, and tells its owner (through
// the callbacks) when an object becomes available and when objects are freed.
//
// Trust: a value is accepted only from the client allowed to write it (the `may_write` check
// given at construction: the client that minted a put id, or the worker a task was sent to),
// and object ids a client does not hold are never handed out while unsealed.
//
// Across nodes it is the local half of docs/cluster-design.md §5-7: entries for ids other nodes
// own are borrows, registered and unregistered through the ObjectDirectory; a stored object whose
// bytes are elsewhere is pulled (PullManager) before a reader here gets a pinned location; the
// node keeps the primary copies of returns it computed for other owners until they free them.
//
// Ownership: owned by the NodeServer; owns the table, the store and the holdings.
// Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "node/client_registry.h"
#include "node/object_directory.h"
#include "node/pull_manager.h"
#include "object_store/object_table.h"
#include "object_store/shared_store.h"

namespace quanta {

class ObjectManager {
 public:
  struct Callbacks {
    std::function<void(const ObjectID&)> on_sealed;                   // wakes dependent tasks
    std::function<void(const std::vector<ObjectID>&)> on_freed;       // e.g. an actor's object
    std::function<bool(uint64_t client, const ObjectID&)> may_write;  // may this client seal it?
    // An owned stored object's every copy is gone: re-run the task that made it. True if it will
    // be sealed again (with its value, or with an error saying why it could not be rebuilt).
    std::function<bool(const ObjectID&)> rebuild;
    std::function<void(LocalClient&)> before_value;                   // may be empty
  };

  // `store` may be null (a node without shared memory: every value travels inline).
  ObjectManager(ClientRegistry* clients, std::unique_ptr<SharedStore> store, Callbacks callbacks);

  // Wired once the node knows its index (before any client connects).
  void Attach(uint32_t local_index, ObjectDirectory* directory, PullManager* pulls);

  SharedStore* store() { return store_.get(); }
  const ObjectTable& table() const { return table_; }
  bool IsSealed(const ObjectID& id) const { return table_.IsSealed(id); }
  const ObjectTable::Entry* Find(const ObjectID& id) const { return table_.Find(id); }

  // References held by the node itself (pending tasks' arguments, actors' constructor args).
  // False (nothing held) for an id of ours that does not exist.
  bool Pin(const ObjectID& id) { return table_.AddRef(id); }
  void Release(const std::vector<ObjectID>& ids);
  // A client submitted a task: it holds one reference to `id` (a return) and is subscribed.
  void AddReturnHolder(uint64_t client, const ObjectID& id);
  void OnRefDeltas(uint64_t client, const protocol::RefDeltas& msg);
  // Drops everything the client held: references, read pins, half-written objects.
  void DropClient(uint64_t client);

  // Seals the value and pushes it to subscribers; dependents are told through on_sealed.
  void Seal(const ObjectID& id, protocol::ObjectValue value);
  Status OnPut(LocalClient& client, protocol::PutObject msg);
  // Checks that a kStored value sealed by `client` names an object it created with that size.
  Status AcceptStoredValue(uint64_t client, const ObjectID& id, const protocol::ObjectValue& value);
  void OnSubscribe(LocalClient& client, const std::vector<ObjectID>& ids);
  void OnSubscribePinned(LocalClient& client, const std::vector<ObjectID>& ids);
  void OnPinDeltas(LocalClient& client, const protocol::RefDeltas& msg);
  void OnCreateObject(LocalClient& client, const protocol::CreateObject& msg);
  void OnGetStoreStats(LocalClient& client, const protocol::RequestId& msg);
  // The store's counters and objects as `viewer` (a client id, 0 for nobody) may see them: ids of
  // objects still being computed are shown only to their holders.
  protocol::StoreStatsReply DescribeStore(uint64_t viewer) const;

  // The value as sent to `client`: for stored objects the current location, pinned for the
  // client when `pin` is set (an error value if the object cannot be made resident). A stored
  // object must be local to be pinned (see WhenLocal).
  protocol::ObjectValue ValueFor(uint64_t client, const ObjectID& id, bool pin);
  // A local copy not in the table (a forwarded task's argument): pinned for `client`.
  protocol::ObjectValue PinCopyFor(uint64_t client, const ObjectID& id);

  // Across nodes.
  // Runs `done` once a stored object's bytes are in this node's store (at once for inline
  // values and local copies; an error if they cannot be brought here).
  void WhenLocal(const ObjectID& id, std::function<void(const Status&)> done);
  // Brings a stored object to this node (for a task argument) without a table entry.
  void FetchCopy(const ObjectID& id, uint64_t size, std::vector<uint32_t> locations,
                 std::function<void(const Status&)> done);
  void OnFetch(LocalClient& client, const std::vector<ObjectID>& ids);  // wait(fetch_local=True)
  bool NeedsFetch(const ObjectID& id) const;  // stored, sealed, bytes not here
  // Lineage: the object is being rebuilt; readers wait for it to be sealed again.
  void Unseal(const ObjectID& id);
  // Lineage: an owned return freed since is made again (pending, one reference for the caller).
  void Recreate(const ObjectID& id) {
    table_.CreatePending(id);
    table_.AddRef(id);
  }
  // An owned object whose bytes are on no node any more is rebuilt (true: it will be sealed
  // again; false: not lost, or it cannot be).
  bool RebuildIfLost(const ObjectID& id);
  // An owned, sealed, stored object with no copy on any alive node.
  bool IsLost(const ObjectID& id) const;
  // A borrowed object's value is wanted here (a task waits for it): ask its owner.
  void RequestValue(const ObjectID& id);
  bool HasLocalCopy(const ObjectID& id) const { return store_ && store_->IsSealed(id); }
  // Directory hooks.
  void SealBorrowed(const ObjectID& id, protocol::ObjectValue value, const std::vector<uint32_t>& locations);
  bool AddRemoteRef(const ObjectID& id);  // an owned object got a borrower; false if unknown
  protocol::ObjectValue ValueForPeer(const ObjectID& id);
  // A primary copy this node made for another owner: kept until the owner frees it.
  void KeepForOwner(const ObjectID& id) { held_for_owners_.insert(id); }
  void OnFreeCopies(const std::vector<ObjectID>& ids);
  // A stored copy nobody will read (a generator item yielded twice): deleted unless the table or
  // an owner elsewhere still uses it.
  void DiscardCopy(const ObjectID& id) {
    if (store_ && table_.Find(id) == nullptr && !held_for_owners_.count(id)) store_->Delete(id);
  }
  size_t num_held_for_owners() const { return held_for_owners_.size(); }

 private:
  void SendValue(LocalClient& client, const ObjectID& id, const protocol::ObjectValue& value);
  void AddHolding(uint64_t client, const ObjectID& id, int64_t n);
  void HandleFreed(const std::vector<ObjectID>& freed);

  void SendPinnedWhenLocal(uint64_t client, const ObjectID& id);
  // A pull found no copy: rebuild an owned object, or ask a borrowed one's owner again (its
  // owner may rebuild it). True if `id` will be sealed again.
  bool Recover(const ObjectID& id);

  ClientRegistry* clients_;
  std::unique_ptr<SharedStore> store_;
  Callbacks callbacks_;
  ObjectTable table_;
  ObjectDirectory* directory_ = nullptr;
  PullManager* pulls_ = nullptr;
  std::unordered_set<ObjectID, ObjectIDHash> held_for_owners_;
  // Readers waiting for a lost object to be sealed again (then brought here).
  std::unordered_map<ObjectID, std::vector<std::function<void(const Status&)>>, ObjectIDHash> rebuilding_;
  std::unordered_map<ObjectID, int, ObjectIDHash> recoveries_;  // borrowed: re-asks of the owner
  // client id -> object id -> references reported by that client
  std::unordered_map<uint64_t, std::unordered_map<ObjectID, int64_t, ObjectIDHash>> holdings_;
};

}  // namespace quanta
