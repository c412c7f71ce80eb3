#include "node/object_manager.h"

#include <algorithm>
#include <unordered_set>

#include "common/logging.h"
#include "node/task.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::StoredLocation;

namespace {
uint64_t StoredSize(const ObjectValue& v) {
  auto loc = StoredLocation::Decode(v.data);
  return loc.ok() ? loc->size : 0;
}
}  // namespace

ObjectManager::ObjectManager(ClientRegistry* clients, std::unique_ptr<SharedStore> store, Callbacks callbacks)
    : clients_(clients), store_(std::move(store)), callbacks_(std::move(callbacks)) {}

void ObjectManager::Attach(uint32_t local_index, ObjectDirectory* directory, PullManager* pulls) {
  directory_ = directory;
  pulls_ = pulls;
  table_.set_local_node(local_index);
  table_.set_on_borrow_started([this](const ObjectID& id) { directory_->OnBorrowStarted(id); });
  if (store_) {
    store_->set_on_evicted([this](const ObjectID& id) {
      held_for_owners_.erase(id);
      if (table_.IsForeign(id)) directory_->CopyDropped(id);
    });
  }
}

void ObjectManager::AddHolding(uint64_t client, const ObjectID& id, int64_t n) {
  auto& held = holdings_[client];
  int64_t& h = held[id];
  h += n;
  if (h <= 0) held.erase(id);
}

void ObjectManager::HandleFreed(const std::vector<ObjectID>& freed) {
  if (freed.empty()) return;
  for (const auto& id : freed) {
    recoveries_.erase(id);
    if (table_.IsForeign(id)) {
      // Our borrow ended: our secondary copy goes (a primary kept for its owner stays).
      if (directory_) directory_->OnBorrowEnded(id);
      if (store_ && store_->IsSecondary(id)) store_->Delete(id);
      continue;
    }
    if (directory_) directory_->OnOwnedFreed(id);  // every other node's copy goes too
    if (store_) store_->Delete(id);
  }
  if (callbacks_.on_freed) callbacks_.on_freed(freed);
}

void ObjectManager::Release(const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> freed;
  for (const auto& id : ids) table_.RemoveRef(id, 1, &freed);
  HandleFreed(freed);
}

void ObjectManager::AddReturnHolder(uint64_t client, const ObjectID& id) {
  table_.CreatePending(id);
  table_.AddRef(id);
  AddHolding(client, id, 1);
  table_.Subscribe(id, client);
}

void ObjectManager::OnRefDeltas(uint64_t client, const protocol::RefDeltas& msg) {
  // A batch is unordered: apply every increment before any decrement, so an object that one
  // ref kept alive cannot be freed just before another ref to it (in the same batch) arrives.
  for (const auto& [id, delta] : msg.deltas) {
    if (delta <= 0) continue;
    // An id of ours that does not exist (freed, or never created) gets no pending entry that a
    // reader would wait on forever; one another node owns becomes a borrow.
    if (!table_.AddRef(id, delta)) continue;
    AddHolding(client, id, delta);
  }
  std::vector<ObjectID> freed;
  auto held = holdings_.find(client);
  for (const auto& [id, delta] : msg.deltas) {
    if (delta >= 0 || held == holdings_.end()) continue;
    auto h = held->second.find(id);
    int64_t n = std::min<int64_t>(-static_cast<int64_t>(delta), h == held->second.end() ? 0 : h->second);
    if (n == 0) continue;  // never held: ignore rather than corrupt others' counts
    AddHolding(client, id, -n);
    table_.RemoveRef(id, n, &freed);
  }
  HandleFreed(freed);
}

void ObjectManager::DropClient(uint64_t client) {
  if (store_) {
    store_->UnpinAll(client);
    store_->AbortCreatesOf(client);  // half-written objects vanish with their writer
  }
  auto it = holdings_.find(client);
  if (it == holdings_.end()) return;
  auto held = std::move(it->second);
  holdings_.erase(it);
  std::vector<ObjectID> freed;
  for (const auto& [id, n] : held) table_.RemoveRef(id, n, &freed);
  HandleFreed(freed);
}

void ObjectManager::Seal(const ObjectID& id, ObjectValue value) {
  std::vector<uint64_t> subscribers = table_.Seal(id, std::move(value));
  for (uint64_t cid : subscribers) {
    LocalClient* c = clients_->Find(cid);
    auto held = holdings_.find(cid);
    if (c != nullptr && held != holdings_.end() && held->second.count(id)) {
      SendValue(*c, id, ValueFor(cid, id, false));
    }
  }
  if (callbacks_.on_sealed) callbacks_.on_sealed(id);
  if (directory_ && !table_.IsForeign(id)) directory_->OnOwnedSealed(id);
  if (auto w = rebuilding_.find(id); w != rebuilding_.end()) {  // rebuilt: bring it here now
    std::vector<std::function<void(const Status&)>> waiting = std::move(w->second);
    rebuilding_.erase(w);
    for (auto& done : waiting) WhenLocal(id, std::move(done));
  }
  std::vector<ObjectID> freed;
  table_.EraseIfUnreferenced(id, &freed);
  HandleFreed(freed);
}

Status ObjectManager::OnPut(LocalClient& client, protocol::PutObject msg) {
  if (msg.object_id.Creator() != client.id || msg.object_id.Index() != ObjectID::kPutIndex) {
    return Status::ProtocolError("PutObject of an id this client did not mint");
  }
  QUANTA_RETURN_IF_ERROR(AcceptStoredValue(client.id, msg.object_id, msg.value));
  if (table_.IsSealed(msg.object_id)) return Status::Ok();
  table_.CreatePending(msg.object_id);
  table_.AddRef(msg.object_id);
  AddHolding(client.id, msg.object_id, 1);
  Seal(msg.object_id, std::move(msg.value));
  return Status::Ok();
}

Status ObjectManager::AcceptStoredValue(uint64_t client, const ObjectID& id, const ObjectValue& value) {
  if (value.kind != ObjectKind::kStored) return Status::Ok();
  if (!store_) return Status::ProtocolError("stored object sent to a node without a store");
  auto loc = StoredLocation::Decode(value.data);
  if (!loc.ok()) return loc.status();
  if (loc->size != store_->SizeOf(id)) return Status::ProtocolError("stored object size mismatch for " + id.Hex());
  return store_->Seal(id, client);
}

void ObjectManager::SendValue(LocalClient& client, const ObjectID& id, const ObjectValue& value) {
  if (callbacks_.before_value) callbacks_.before_value(client);
  client.conn->Send(MessageType::kObjectReady, protocol::ObjectReady{id, value});
}

void ObjectManager::OnSubscribe(LocalClient& client, const std::vector<ObjectID>& ids) {
  std::unordered_set<ObjectID, ObjectIDHash> seen;
  for (const auto& id : ids) {
    if (!seen.insert(id).second) continue;  // one answer per id, however often it is named
    const ObjectTable::Entry* e = table_.Find(id);
    if (e == nullptr) {
      SendValue(client, id,
                SystemError(ObjectKind::kObjectLost,
                            "object " + id.Hex() + " does not exist: it was freed (every reference to it was "
                            "dropped), or it never existed in this cluster"));
      continue;
    }
    if (table_.Subscribe(id, client.id)) {
      SendValue(client, id, ValueFor(client.id, id, false));
    } else if (e->borrowed && directory_) {
      directory_->NeedValue(id);  // its owner tells us once it is sealed
    }
  }
}

ObjectValue ObjectManager::ValueFor(uint64_t client, const ObjectID& id, bool pin) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr) return SystemError(ObjectKind::kObjectLost, "object " + id.Hex() + " was freed");
  if (e->value.kind != ObjectKind::kStored || !store_) return e->value;
  StoredLocation loc;
  if (!store_->IsSealed(id)) {
    // The bytes are on other nodes: a reader must ask for a pinned location (pulled first).
    loc.size = StoredSize(e->value);
    loc.local = false;
    if (pin) return SystemError(ObjectKind::kObjectLost, "object " + id.Hex() + " is not on this node");
    ObjectValue out;
    out.kind = ObjectKind::kStored;
    out.data = loc.Encode();
    return out;
  }
  loc.size = store_->SizeOf(id);
  if (pin) {
    auto offset = store_->Pin(id, client);
    if (!offset.ok()) return SystemError(ObjectKind::kStoreFull, offset.status().message());
    loc.offset = offset.value();
    loc.pinned = true;
  }
  ObjectValue out;
  out.kind = ObjectKind::kStored;
  out.data = loc.Encode();
  return out;
}

void ObjectManager::OnSubscribePinned(LocalClient& client, const std::vector<ObjectID>& ids) {
  std::unordered_set<ObjectID, ObjectIDHash> seen;
  for (const auto& id : ids) {
    if (!seen.insert(id).second) continue;
    const ObjectTable::Entry* e = table_.Find(id);
    if (e == nullptr || !e->sealed) {
      // Not sealed yet: a plain subscription first; the reader asks again once it knows.
      OnSubscribe(client, {id});
      continue;
    }
    if (NeedsFetch(id)) {
      SendPinnedWhenLocal(client.id, id);
      continue;
    }
    SendValue(client, id, ValueFor(client.id, id, true));
  }
}

void ObjectManager::RequestValue(const ObjectID& id) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e != nullptr && e->borrowed && !e->sealed && directory_) directory_->NeedValue(id);
}

bool ObjectManager::NeedsFetch(const ObjectID& id) const {
  const ObjectTable::Entry* e = table_.Find(id);
  return e != nullptr && e->sealed && e->value.kind == ObjectKind::kStored && store_ && !store_->IsSealed(id);
}

void ObjectManager::WhenLocal(const ObjectID& id, std::function<void(const Status&)> done) {
  if (!NeedsFetch(id)) {
    done(Status::Ok());
    return;
  }
  if (pulls_ == nullptr) {
    done(Status::NotFound("object " + id.Hex() + " is stored on another node and this node cannot pull"));
    return;
  }
  pulls_->EnsureLocal(id, StoredSize(table_.Find(id)->value), directory_->LocationsOf(id),
                      [this, id, done = std::move(done)](const Status& st) mutable {
                        if (!st.ok() && st.code() == StatusCode::kNotFound && Recover(id)) {
                          if (table_.IsSealed(id)) {  // settled at once (e.g. cannot be rebuilt)
                            WhenLocal(id, std::move(done));
                          } else {
                            rebuilding_[id].push_back(std::move(done));
                          }
                          return;
                        }
                        done(st);
                      });
}

void ObjectManager::Unseal(const ObjectID& id) { Release(table_.Unseal(id)); }

bool ObjectManager::IsLost(const ObjectID& id) const {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr || !e->sealed || e->value.kind != ObjectKind::kStored || table_.IsForeign(id)) return false;
  return !HasLocalCopy(id) && (directory_ == nullptr || directory_->LocationsOf(id).empty());
}

bool ObjectManager::RebuildIfLost(const ObjectID& id) {
  return IsLost(id) && callbacks_.rebuild && callbacks_.rebuild(id);
}

bool ObjectManager::Recover(const ObjectID& id) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr) return false;
  if (!e->sealed) return rebuilding_.count(id) > 0;  // being rebuilt already: wait with the others
  if (!table_.IsForeign(id)) return RebuildIfLost(id);
  // Borrowed: its owner may rebuild it. Bounded, so that an owner that keeps naming a copy
  // nobody can serve cannot make readers loop.
  constexpr int kMaxRecoveries = 3;
  if (e->value.kind != ObjectKind::kStored || directory_ == nullptr || ++recoveries_[id] > kMaxRecoveries) return false;
  Unseal(id);
  directory_->Resubscribe(id);
  return true;
}

void ObjectManager::SendPinnedWhenLocal(uint64_t client_id, const ObjectID& id) {
  WhenLocal(id, [this, client_id, id](const Status& st) {
    LocalClient* client = clients_->Find(client_id);
    if (client == nullptr) return;
    if (!st.ok()) {
      ObjectKind kind = st.code() == StatusCode::kResourceExhausted ? ObjectKind::kStoreFull : ObjectKind::kObjectLost;
      SendValue(*client, id, SystemError(kind, "object " + id.Hex() + " could not be brought to this node: " + st.message()));
      return;
    }
    SendValue(*client, id, ValueFor(client_id, id, true));
  });
}

void ObjectManager::OnFetch(LocalClient& client, const std::vector<ObjectID>& ids) {
  std::unordered_set<ObjectID, ObjectIDHash> seen;
  for (const auto& id : ids) {
    if (!seen.insert(id).second || !NeedsFetch(id)) continue;
    uint64_t client_id = client.id;
    WhenLocal(id, [this, client_id, id](const Status& st) {
      LocalClient* c = clients_->Find(client_id);
      if (c == nullptr) return;
      SendValue(*c, id, st.ok() ? ValueFor(client_id, id, false)
                                : SystemError(ObjectKind::kObjectLost, "object " + id.Hex() +
                                                                           " could not be brought to this node: " +
                                                                           st.message()));
    });
  }
}

void ObjectManager::FetchCopy(const ObjectID& id, uint64_t size, std::vector<uint32_t> locations,
                              std::function<void(const Status&)> done) {
  if (HasLocalCopy(id)) {
    done(Status::Ok());
    return;
  }
  if (pulls_ == nullptr) {
    done(Status::NotFound("this node cannot pull objects"));
    return;
  }
  pulls_->EnsureLocal(id, size, std::move(locations), std::move(done));
}

ObjectValue ObjectManager::PinCopyFor(uint64_t client, const ObjectID& id) {
  if (!store_) return SystemError(ObjectKind::kObjectLost, "no store on this node");
  auto offset = store_->Pin(id, client);
  if (!offset.ok()) return SystemError(ObjectKind::kObjectLost, offset.status().message());
  StoredLocation loc;
  loc.offset = offset.value();
  loc.size = store_->SizeOf(id);
  loc.pinned = true;
  ObjectValue out;
  out.kind = ObjectKind::kStored;
  out.data = loc.Encode();
  return out;
}

void ObjectManager::SealBorrowed(const ObjectID& id, ObjectValue value, const std::vector<uint32_t>& locations) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr || !e->borrowed || e->sealed) return;
  (void)locations;  // kept by the directory
  Seal(id, std::move(value));
}

bool ObjectManager::AddRemoteRef(const ObjectID& id) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr || e->borrowed) return false;
  table_.AddRef(id);
  return true;
}

ObjectValue ObjectManager::ValueForPeer(const ObjectID& id) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr) return SystemError(ObjectKind::kObjectLost, "object " + id.Hex() + " was freed");
  if (e->value.kind != ObjectKind::kStored) return e->value;
  StoredLocation loc;
  loc.size = store_ && store_->Contains(id) ? store_->SizeOf(id) : StoredSize(e->value);
  loc.local = false;
  ObjectValue out;
  out.kind = ObjectKind::kStored;
  out.data = loc.Encode();
  return out;
}

void ObjectManager::OnFreeCopies(const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    held_for_owners_.erase(id);
    if (table_.Find(id) == nullptr && store_) store_->Delete(id);
  }
}

void ObjectManager::OnPinDeltas(LocalClient& client, const protocol::RefDeltas& msg) {
  if (!store_) return;
  for (const auto& [id, delta] : msg.deltas) {
    if (delta < 0) store_->Unpin(id, client.id, -static_cast<int64_t>(delta));
  }
}

void ObjectManager::OnCreateObject(LocalClient& client, const protocol::CreateObject& msg) {
  protocol::CreateObjectReply reply;
  reply.request_id = msg.request_id;
  if (!store_) {
    reply.error = "this node has no shared-memory store";
  } else if (!callbacks_.may_write || !callbacks_.may_write(client.id, msg.object_id)) {
    reply.error = "object " + msg.object_id.Hex() + " is not this process's to create (neither a put "
                  "id it minted nor a return of a task it runs)";
  } else {
    auto offset = store_->Create(msg.object_id, msg.size, client.id);
    if (offset.ok()) {
      reply.ok = true;
      reply.offset = offset.value();
    } else {
      reply.error = offset.status().message();
    }
  }
  client.conn->Send(MessageType::kCreateObjectReply, reply);
}

void ObjectManager::OnGetStoreStats(LocalClient& client, const protocol::RequestId& msg) {
  protocol::StoreStatsReply reply = DescribeStore(client.id);
  reply.request_id = msg.request_id;
  client.conn->Send(MessageType::kStoreStats, reply);
}

protocol::StoreStatsReply ObjectManager::DescribeStore(uint64_t viewer) const {
  protocol::StoreStatsReply reply;
  if (store_) {
    StoreStats s = store_->Stats();
    reply.capacity = s.capacity;
    reply.used = s.used;
    reply.num_in_memory = s.num_in_memory;
    reply.num_spilled = s.num_spilled;
    reply.spilled_bytes = s.spilled_bytes;
    reply.num_pinned = s.num_pinned;
    reply.total_spilled = s.total_spilled;
    reply.total_restored = s.total_restored;
    reply.total_evicted = s.total_evicted;
    reply.num_secondary = s.num_secondary;
  }
  auto held = holdings_.find(viewer);
  std::unordered_map<ObjectID, size_t, ObjectIDHash> index;
  table_.ForEach([&](const ObjectID& id, const ObjectTable::Entry& e) {
    protocol::StoreStatsReply::Object o;
    o.id = id;
    o.refs = e.refs;
    if (!e.sealed) {
      o.where = 3;
      // The id of an object still being computed is a capability to nobody but its holders:
      // others see only which client it belongs to.
      bool holds = held != holdings_.end() && held->second.count(id);
      if (!holds) o.id = ObjectID::Make(id.Creator(), 0, 0);
    } else if (e.value.kind == ObjectKind::kStored && store_) {
      if (store_->Contains(id)) {
        o.size = store_->SizeOf(id);
        o.where = store_->IsSecondary(id) ? 5 : 1;  // a copy pulled from another node is secondary
      } else {
        o.size = StoredSize(e.value);
        o.where = 6;  // known here, its bytes only on other nodes (not fetched)
      }
    } else {
      o.size = e.value.data.size();
      ++reply.num_inline;
      reply.inline_bytes += o.size;
    }
    index[id] = reply.objects.size();
    reply.objects.push_back(o);
  });
  if (store_) {
    for (const auto& info : store_->List()) {
      auto it = index.find(info.id);
      if (it == index.end()) {
        // A copy without a reference here: kept for another node's owner, or secondary.
        protocol::StoreStatsReply::Object o;
        o.id = info.id;
        o.size = info.size;
        o.where = held_for_owners_.count(info.id) ? 4 : 5;
        o.pins = info.pins;
        reply.objects.push_back(o);
        continue;
      }
      auto& o = reply.objects[it->second];
      o.pins = info.pins;
      if (info.spilled) o.where = 2;
    }
  }
  return reply;
}

}  // namespace quanta
