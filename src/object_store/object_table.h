// The node's table of objects: value (once sealed), reference count, and who is waiting.
//
// An object's reference count is the number of holders: each client process that holds at
// least one ObjectRef counts once per transition it reported (see docs/architecture.md,
// "Reference counting"), each pending task pins its arguments, and each sealed object pins the
// refs nested inside it. When the count reaches zero a sealed object is erased (and releases its
// nested refs); a pending one is erased as soon as it is sealed.
//
// Values are held inline in this table for now; the shared-memory store (issue #3) keeps large
// values in an arena and leaves only their location here.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

class ObjectTable {
 public:
  struct Entry {
    bool sealed = false;
    protocol::ObjectValue value;
    int64_t refs = 0;
    std::vector<uint64_t> subscribers;  // clients to send the value to once sealed
  };

  // Adds `n` references, creating a pending entry if the object is unknown.
  void AddRef(const ObjectID& id, int64_t n = 1);
  // Drops `n` references; objects that become unreferenced (and, transitively, objects
  // only they kept alive) are erased and their ids appended to `freed`.
  void RemoveRef(const ObjectID& id, int64_t n, std::vector<ObjectID>* freed);
  // Stores the value of a pending (or unknown) object and pins its nested refs. Returns the
  // subscribers to notify (cleared from the entry). Sealing twice keeps the first value.
  // The caller notifies the subscribers, then calls EraseIfUnreferenced.
  std::vector<uint64_t> Seal(const ObjectID& id, protocol::ObjectValue value);
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
};

}  // namespace quanta
