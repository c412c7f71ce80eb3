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

ObjectManager::ObjectManager(ClientRegistry* clients, std::unique_ptr<SharedStore> store, Callbacks callbacks)
    : clients_(clients), store_(std::move(store)), callbacks_(std::move(callbacks)) {}

void ObjectManager::AddHolding(uint64_t client, const ObjectID& id, int64_t n) {
  auto& held = holdings_[client];
  int64_t& h = held[id];
  h += n;
  if (h <= 0) held.erase(id);
}

void ObjectManager::HandleFreed(const std::vector<ObjectID>& freed) {
  if (freed.empty()) return;
  if (store_) {
    for (const auto& id : freed) store_->Delete(id);
  }
  if (callbacks_.on_freed) callbacks_.on_freed(freed);
}

void ObjectManager::Release(const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> freed;
  for (const auto& id : ids) table_.RemoveRef(id, 1, &freed);
  HandleFreed(freed);
}

void ObjectManager::AddReturnHolder(uint64_t client, const ObjectID& id) {
  table_.AddRef(id);
  AddHolding(client, id, 1);
  table_.Subscribe(id, client);
}

void ObjectManager::OnRefDeltas(uint64_t client, const protocol::RefDeltas& msg) {
  // A batch is unordered: apply every increment before any decrement, so an object that one
  // ref kept alive cannot be freed just before another ref to it (in the same batch) arrives.
  for (const auto& [id, delta] : msg.deltas) {
    if (delta <= 0) continue;
    // Only objects this node knows: a ref to an id nobody ever created (or already freed) must
    // not conjure up a pending entry that a reader would wait on forever.
    if (table_.Find(id) == nullptr) continue;
    table_.AddRef(id, delta);
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
    if (table_.Subscribe(id, client.id)) SendValue(client, id, ValueFor(client.id, id, false));
  }
}

ObjectValue ObjectManager::ValueFor(uint64_t client, const ObjectID& id, bool pin) {
  const ObjectTable::Entry* e = table_.Find(id);
  if (e == nullptr) return SystemError(ObjectKind::kObjectLost, "object " + id.Hex() + " was freed");
  if (e->value.kind != ObjectKind::kStored || !store_) return e->value;
  StoredLocation loc;
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
    SendValue(client, id, ValueFor(client.id, id, true));
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
  protocol::StoreStatsReply reply;
  reply.request_id = msg.request_id;
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
  }
  auto held = holdings_.find(client.id);
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
      o.size = store_->SizeOf(id);
      o.where = 1;
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
      if (it == index.end()) continue;
      auto& o = reply.objects[it->second];
      o.pins = info.pins;
      if (info.spilled) o.where = 2;
    }
  }
  client.conn->Send(MessageType::kStoreStats, reply);
}

}  // namespace quanta
