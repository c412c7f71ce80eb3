// NodeServer: the shared-memory half of object handling (create, seal, pin, stats).
// See object_store/shared_store.h for the model.
#include "common/logging.h"
#include "node/node_server.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::StoredLocation;

void NodeServer::OnCreateObject(Client& client, const protocol::CreateObject& msg) {
  protocol::CreateObjectReply reply;
  reply.request_id = msg.request_id;
  if (!store_) {
    reply.error = "this node has no shared-memory store";
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

Status NodeServer::AcceptStoredValue(Client& client, const ObjectID& id, const ObjectValue& value) {
  if (value.kind != ObjectKind::kStored) return Status::Ok();
  if (!store_) return Status::ProtocolError("stored object sent to a node without a store");
  auto loc = StoredLocation::Decode(value.data);
  if (!loc.ok()) return loc.status();
  if (loc->size != store_->SizeOf(id)) return Status::ProtocolError("stored object size mismatch for " + id.Hex());
  return store_->Seal(id, client.id);
}

ObjectValue NodeServer::ValueForClient(const ObjectID& id, const ObjectValue& value, Client* client,
                                       bool pin) {
  if (value.kind != ObjectKind::kStored || !store_) return value;
  StoredLocation loc;
  loc.size = store_->SizeOf(id);
  if (pin && client != nullptr) {
    auto offset = store_->Pin(id, client->id);
    if (!offset.ok()) return SystemError(ObjectKind::kStoreFull, offset.status().message());
    loc.offset = offset.value();
    loc.pinned = true;
  }
  ObjectValue out;
  out.kind = ObjectKind::kStored;
  out.data = loc.Encode();
  return out;
}

void NodeServer::OnSubscribePinned(Client& client, const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    const ObjectTable::Entry* e = objects_.Find(id);
    if (e == nullptr || !e->sealed) {
      // Not sealed yet: a plain subscription first; the reader asks again once it knows.
      OnSubscribe(client, {id});
      continue;
    }
    client.conn->Send(MessageType::kObjectReady,
                      protocol::ObjectReady{id, ValueForClient(id, e->value, &client, true)});
  }
}

void NodeServer::OnPinDeltas(Client& client, const protocol::RefDeltas& msg) {
  if (!store_) return;
  for (const auto& [id, delta] : msg.deltas) {
    if (delta < 0) store_->Unpin(id, client.id, -static_cast<int64_t>(delta));
  }
}

void NodeServer::OnGetStoreStats(Client& client, const protocol::RequestId& msg) {
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
  objects_.ForEach([&](const ObjectID& id, const ObjectTable::Entry& e) {
    protocol::StoreStatsReply::Object o;
    o.id = id;
    o.refs = e.refs;
    if (!e.sealed) {
      o.where = 3;
    } else if (e.value.kind == ObjectKind::kStored && store_) {
      o.size = store_->SizeOf(id);
      o.where = 1;
    } else {
      o.size = e.value.data.size();
      ++reply.num_inline;
      reply.inline_bytes += o.size;
    }
    reply.objects.push_back(o);
  });
  if (store_) {
    for (const auto& info : store_->List()) {
      for (auto& o : reply.objects) {
        if (o.id == info.id) {
          o.pins = info.pins;
          if (info.spilled) o.where = 2;
        }
      }
    }
  }
  client.conn->Send(MessageType::kStoreStats, reply);
}

}  // namespace quanta
