// CoreClient: objects in the node's shared-memory store (create, write, seal, pinned reads).
// See core_client.h for the threading contract and object_store/shared_store.h for pins.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "common/bulk_copy.h"
#include "core/core_client.h"
#include "core/deadline.h"

namespace quanta {

using protocol::MessageType;

void CoreClient::MaybeUnpin(const ObjectID& id, Local& l) {
  if (l.uses > 0 || l.node_pins == 0 || l.pin_waiters > 0) return;
  pending_unpins_[id] -= static_cast<int32_t>(l.node_pins);
  l.node_pins = 0;
  if (l.Unused()) objects_.erase(id);
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
}

void CoreClient::ReleaseUse(const ObjectID& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  if (it->second.uses > 0) --it->second.uses;
  MaybeUnpin(id, it->second);
}

Result<uint64_t> CoreClient::CreateStored(const ObjectID& id, uint64_t size) {
  if (!store_) return Status::InvalidArgument("this node has no shared-memory object store");
  if (id.Index() != ObjectID::kPutIndex) {
    // A return of a call that came on a lane: the node takes the call over first, so that the
    // object is one of its tasks' (its result will go that way too).
    std::optional<WorkerLanes::Route> adopt;
    {
      std::lock_guard<std::mutex> lock(mu_);
      WorkerLanes::Route* route = lanes_.FindRoute(id.TaskId());
      if (route != nullptr && !route->adopted) {
        route->adopted = true;
        adopt = *route;
      }
    }
    if (adopt) {
      QUANTA_RETURN_IF_ERROR(AdoptLaneCall(*adopt));
    }
  }
  auto reply = Request<protocol::CreateObjectReply>(MessageType::kCreateObject, protocol::CreateObject{0, id, size},
                                                    -1, "an object-store allocation");
  if (!reply.ok()) return reply.status();
  if (!reply->ok) return Status::ResourceExhausted(reply->error);
  return reply->offset;
}

Status CoreClient::WriteStored(uint64_t offset, const void* src, uint64_t size) {
  if (!store_ || offset + size > store_->size()) return Status::InvalidArgument("write outside the object store");
  uint8_t* dst = store_->data() + offset;
  const auto* from = static_cast<const uint8_t*>(src);
  // Large copies are split across threads: one core's memcpy does not saturate memory.
  constexpr uint64_t kParallelThreshold = 32ull << 20;
  unsigned threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  if (size < kParallelThreshold || threads < 2) {
    BulkCopy(dst, from, size);
    return Status::Ok();
  }
  uint64_t chunk = (size / threads + 4095) & ~uint64_t{4095};
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; ++t) {
    uint64_t begin = chunk * t;
    if (begin >= size) break;
    uint64_t len = std::min(chunk, size - begin);
    helpers.emplace_back([=] { BulkCopy(dst + begin, from + begin, len); });
  }
  BulkCopy(dst, from, std::min(chunk, size));
  for (auto& h : helpers) h.join();
  return Status::Ok();
}

Status CoreClient::PutStored(const ObjectID& id, uint64_t offset, uint64_t size, std::vector<ObjectID> nested) {
  protocol::ObjectValue v;
  v.kind = protocol::ObjectKind::kStored;
  v.data = protocol::StoredLocation{offset, size, false}.Encode();
  v.nested_refs = std::move(nested);
  auto shared = std::make_shared<protocol::ObjectValue>(v);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Local& l = objects_[id];
    l.refs += 1;
    l.value = shared;
    l.subscribed = true;
  }
  return Send(MessageType::kPutObject, protocol::PutObject{id, std::move(v)});
}

Result<protocol::StoreStatsReply> CoreClient::GetStoreStats(int64_t timeout_ms) {
  return Request<protocol::StoreStatsReply>(MessageType::kGetStoreStats, protocol::RequestId{}, timeout_ms,
                                            "an object-store statistics request");
}

void CoreClient::OnObjectReady(protocol::ObjectReady msg) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!streams_.empty() && !OnGeneratorItemPushed(msg.object_id)) return;  // an item nobody wants
  auto it = objects_.find(msg.object_id);
  bool stored = msg.value.kind == protocol::ObjectKind::kStored;
  std::optional<protocol::StoredLocation> loc;
  if (stored) {
    auto decoded = protocol::StoredLocation::Decode(msg.value.data);
    if (decoded.ok()) loc = decoded.value();
  }
  if (it == objects_.end()) {
    // Released meanwhile; a pinned delivery must still be given back.
    if (loc && loc->pinned) {
      pending_unpins_[msg.object_id] -= 1;
      uint64_t one = 1;
      ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
      (void)ignored;
    }
    return;
  }
  Local& l = it->second;
  if (msg.value.kind == protocol::ObjectKind::kStoreFull && l.pin_requested) {
    l.pin_requested = false;
    l.pin_error = msg.value.data;
  } else if (msg.value.IsError() && l.value && l.value->kind == protocol::ObjectKind::kStored) {
    // The bytes could not be brought here (lost with their node, ...): that is its value now.
    l.pin_requested = false;
    l.value = std::make_shared<protocol::ObjectValue>(std::move(msg.value));
  } else if (loc && loc->pinned) {
    l.pin_requested = false;
    l.node_pins += 1;
    l.offset = loc->offset;
    l.size = loc->size;
    if (!l.value) l.value = std::make_shared<protocol::ObjectValue>(std::move(msg.value));
    MaybeUnpin(msg.object_id, l);  // nobody waiting: give it back at once
  } else if (!l.value || (loc && l.value->kind == protocol::ObjectKind::kStored)) {
    l.value = std::make_shared<protocol::ObjectValue>(std::move(msg.value));  // or where it is now
  }
  notify_pending_ = true;
}

}  // namespace quanta
