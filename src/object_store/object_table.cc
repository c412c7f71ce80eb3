#include "object_store/object_table.h"

#include "common/logging.h"

namespace quanta {

void ObjectTable::CreatePending(const ObjectID& id) { entries_.try_emplace(id); }

bool ObjectTable::AddRef(const ObjectID& id, int64_t n) {
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    it->second.refs += n;
    return true;
  }
  if (!IsForeign(id)) return false;
  Entry& e = entries_[id];
  e.borrowed = true;
  e.refs = n;
  if (on_borrow_started_) on_borrow_started_(id);
  return true;
}

void ObjectTable::RemoveRef(const ObjectID& id, int64_t n, std::vector<ObjectID>* freed) {
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    QLOG(kDebug) << "release of unknown object " << id.Hex();
    return;
  }
  it->second.refs -= n;
  if (it->second.refs < 0) {
    QLOG(kWarning) << "negative reference count for " << id.Hex();
    it->second.refs = 0;
  }
  if (it->second.refs == 0 && (it->second.sealed || it->second.borrowed)) Erase(it, freed);
}

std::vector<uint64_t> ObjectTable::Seal(const ObjectID& id, protocol::ObjectValue value) {
  Entry& e = entries_[id];
  if (e.sealed) return {};
  e.sealed = true;
  e.value = std::move(value);
  inline_bytes_ += e.value.data.size();
  if (e.borrowed) {
    // The owner's entry keeps the refs inside alive while we borrow it; a reader here
    // registers its own references when it unpickles them.
    e.value.nested_refs.clear();
  } else {
    // Pin the refs inside; ones that no longer exist (freed, forged) are dropped from the list
    // so that erasing this entry never releases a count it did not take.
    std::vector<ObjectID> nested = std::move(e.value.nested_refs);
    e.value.nested_refs.clear();
    for (const auto& ref : nested) {
      if (AddRef(ref)) entries_.at(id).value.nested_refs.push_back(ref);
    }
  }
  std::vector<uint64_t> subscribers = std::move(e.subscribers);
  e.subscribers.clear();
  return subscribers;
}

std::vector<ObjectID> ObjectTable::Unseal(const ObjectID& id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.sealed) return {};
  Entry& e = it->second;
  e.sealed = false;
  inline_bytes_ -= e.value.data.size();
  std::vector<ObjectID> nested = std::move(e.value.nested_refs);
  e.value = protocol::ObjectValue{};
  return nested;
}

void ObjectTable::EraseIfUnreferenced(const ObjectID& id, std::vector<ObjectID>* freed) {
  auto it = entries_.find(id);
  if (it != entries_.end() && (it->second.sealed || it->second.borrowed) && it->second.refs == 0) Erase(it, freed);
}

bool ObjectTable::Subscribe(const ObjectID& id, uint64_t client) {
  Entry& e = entries_[id];
  if (e.sealed) return true;
  e.subscribers.push_back(client);
  return false;
}

const ObjectTable::Entry* ObjectTable::Find(const ObjectID& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

bool ObjectTable::IsSealed(const ObjectID& id) const {
  const Entry* e = Find(id);
  return e != nullptr && e->sealed;
}

void ObjectTable::Erase(std::unordered_map<ObjectID, Entry, ObjectIDHash>::iterator it,
                        std::vector<ObjectID>* freed) {
  // Iterative, not recursive: a chain of objects each containing a ref to the next can be
  // arbitrarily long, and a recursive release would overflow the stack.
  std::vector<ObjectID> pending;
  while (true) {
    std::vector<ObjectID> nested = std::move(it->second.value.nested_refs);
    inline_bytes_ -= it->second.value.data.size();
    if (freed) freed->push_back(it->first);
    entries_.erase(it);
    pending.insert(pending.end(), nested.begin(), nested.end());
    bool found = false;
    while (!pending.empty() && !found) {
      ObjectID id = pending.back();
      pending.pop_back();
      auto next = entries_.find(id);
      if (next == entries_.end()) continue;
      if (--next->second.refs < 0) next->second.refs = 0;
      if (next->second.refs == 0 && (next->second.sealed || next->second.borrowed)) {
        it = next;
        found = true;
      }
    }
    if (!found) return;
  }
}

}  // namespace quanta
