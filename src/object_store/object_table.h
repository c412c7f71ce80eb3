// The node's table of objects: value (once sealed), reference count, and who is waiting.
//
// An object's reference count is the number of holders: each client process that holds at
// least one ObjectRef counts once per transition it reported (see docs/architecture.md,
// "Reference counting"), each pending task pins its arguments, and each sealed object pins the
// refs nested inside it. When the count reaches zero a sealed object is erased (and releases its
// nested refs); a pending one is erased as soon as it is sealed.
//
// Large values live in the shared-memory store; their entry holds a kStored value naming the
// size (and the store has the bytes, or other nodes do).
//
// Across nodes (docs/cluster-design.md §4-5) every id names its owner node. An entry for an id
// this node owns is created explicitly (CreatePending: a task return, a put) and a reference to
// an unknown id of ours is ignored (it was freed, or never existed). An entry for an id another
// node owns is a *borrow*: created by the first reference, erased at zero even if unsealed; the
// on_borrow_started / freed reports let the ObjectManager register and unregister it with its
// owner.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

class ObjectTable {
 public:
  struct Entry {
    bool sealed = false;
    bool borrowed = false;  // owned by another node
    protocol::ObjectValue value;
    int64_t refs = 0;
    std::vector<uint64_t> subscribers;  // clients to send the value to once sealed
  };

  // Ids whose owner (creator >> 32) is not `index` are borrowed. 0 (the default): all are ours.
  void set_local_node(uint32_t index) { local_node_ = index; }
  bool IsForeign(const ObjectID& id) const {
    return local_node_ != 0 && static_cast<uint32_t>(id.Creator() >> 32) != local_node_;
  }
  // Called with each borrowed entry created by a first reference.
  void set_on_borrow_started(std::function<void(const ObjectID&)> cb) { on_borrow_started_ = std::move(cb); }

  // An object of ours that will be sealed later (a task return, a put). No-op if it exists.
  void CreatePending(const ObjectID& id);
  // Adds `n` references. Creates a borrowed entry for an unknown foreign id; returns false
  // (and does nothing) for an unknown id of ours.
  bool AddRef(const ObjectID& id, int64_t n = 1);
  // Drops `n` references; objects that become unreferenced (and, transitively, objects
  // only they kept alive) are erased and their ids appended to `freed`.
  void RemoveRef(const ObjectID& id, int64_t n, std::vector<ObjectID>* freed);
  // Stores the value of a pending (or unknown) object and pins its nested refs. Returns the
  // subscribers to notify (cleared from the entry). Sealing twice keeps the first value.
  // The caller notifies the subscribers, then calls EraseIfUnreferenced.
  std::vector<uint64_t> Seal(const ObjectID& id, protocol::ObjectValue value);
  // A sealed object whose bytes were lost becomes pending again (it is being rebuilt), keeping
  // its references. Returns the refs its value held, which the caller releases.
  std::vector<ObjectID> Unseal(const ObjectID& id);
  void EraseIfUnreferenced(const ObjectID& id, std::vector<ObjectID>* freed);
  // Registers interest; returns true if the object is already sealed (caller sends it now).
  bool Subscribe(const ObjectID& id, uint64_t client);

  const Entry* Find(const ObjectID& id) const;
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [id, e] : entries_) f(id, e);
  }
  bool IsSealed(const ObjectID& id) const;
  size_t size() const { return entries_.size(); }
  size_t inline_bytes() const { return inline_bytes_; }

 private:
  void Erase(std::unordered_map<ObjectID, Entry, ObjectIDHash>::iterator it,
             std::vector<ObjectID>* freed);
  std::unordered_map<ObjectID, Entry, ObjectIDHash> entries_;
  size_t inline_bytes_ = 0;
  uint32_t local_node_ = 0;
  std::function<void(const ObjectID&)> on_borrow_started_;
};

}  // namespace quanta
