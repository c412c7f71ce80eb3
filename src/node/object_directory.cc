#include "node/object_directory.h"

#include <algorithm>

#include "common/logging.h"
#include "node/object_manager.h"
#include "node/task.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;

ObjectDirectory::ObjectDirectory(ObjectManager* objects, PeerManager* peers, const ClusterView* view)
    : objects_(objects), peers_(peers), view_(view) {}

// ------------------------------------------------------------------------------ borrower

void ObjectDirectory::OnBorrowStarted(const ObjectID& id) {
  uint32_t owner = OwnerOf(id);
  if (!view_->IsAlive(owner)) {
    // No such node, or it died: nothing to register with. Readers fail (at the end of this
    // iteration: we are inside a table update here).
    orphaned_.push_back(id);
    return;
  }
  uint64_t seq = next_seq_++;
  pending_[id].push_back(seq);
  pending_seqs_.insert(seq);
  ++stats_.borrows_registered;
  Queue(add_borrower_, owner, id);
}

void ObjectDirectory::OnBorrowEnded(const ObjectID& id) {
  uint32_t owner = OwnerOf(id);
  borrowed_.erase(id);
  if (!view_->IsAlive(owner)) return;  // never registered, or its owner is gone
  ++stats_.borrows_released;
  // Rule 2: only after every registration issued so far is acknowledged.
  DeferRelease([this, owner, id] { Queue(remove_borrower_, owner, id); });
}

void ObjectDirectory::NeedValue(const ObjectID& id) {
  Borrowed& b = borrowed_[id];
  if (b.subscribed) return;
  b.subscribed = true;
  ++stats_.subscriptions;
  Queue(subscribe_, OwnerOf(id), id);
}

void ObjectDirectory::Resubscribe(const ObjectID& id) {
  Borrowed& b = borrowed_[id];
  b.locations.clear();
  b.subscribed = false;
  NeedValue(id);
}

void ObjectDirectory::OnBorrowAck(uint32_t from, const protocol::BorrowAck& msg) {
  for (const auto& [id, known] : msg.ids) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.empty() || OwnerOf(id) != from) continue;
    pending_seqs_.erase(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) pending_.erase(it);
    if (!known) {
      objects_->SealBorrowed(id, SystemError(ObjectKind::kObjectLost,
                                                  "object " + id.Hex() + " does not exist: its owner (node " +
                                                      std::to_string(from) + ") freed it, or it never existed"),
                             {});
    }
  }
  RunDeferred();
}

void ObjectDirectory::OnObjectInfo(uint32_t from, protocol::ObjectInfo msg) {
  if (OwnerOf(msg.object_id) != from) return;
  if (!msg.known) {
    objects_->SealBorrowed(msg.object_id,
                           SystemError(ObjectKind::kObjectLost, "object " + msg.object_id.Hex() +
                                                                         " does not exist: its owner freed it, or it "
                                                                         "never existed"),
                           {});
    return;
  }
  auto it = borrowed_.find(msg.object_id);
  if (it != borrowed_.end()) it->second.locations = msg.locations;
  objects_->SealBorrowed(msg.object_id, std::move(msg.value), msg.locations);
}

// ------------------------------------------------------------------------------ owner

void ObjectDirectory::OnAddBorrower(uint32_t from, const std::vector<ObjectID>& ids) {
  protocol::BorrowAck ack;
  for (const auto& id : ids) {
    bool known = OwnerOf(id) == local_ && objects_->AddRemoteRef(id);
    if (known) owned_[id].borrowers[from] += 1;
    ack.ids.emplace_back(id, known);
  }
  peers_->Send(from, MessageType::kBorrowAck, ack);
}

void ObjectDirectory::OnRemoveBorrower(uint32_t from, const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> release;
  for (const auto& id : ids) {
    auto it = owned_.find(id);
    if (it == owned_.end()) continue;
    auto b = it->second.borrowers.find(from);
    if (b == it->second.borrowers.end()) continue;
    if (--b->second == 0) {
      it->second.borrowers.erase(b);
      if (it->second.primary != from) it->second.locations.erase(from);  // its secondary copy went too
    }
    release.push_back(id);
  }
  objects_->Release(release);
}

void ObjectDirectory::OnSubscribeObject(uint32_t from, const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    if (OwnerOf(id) != local_) continue;
    const ObjectTable::Entry* e = objects_->Find(id);
    if (e == nullptr) {
      protocol::ObjectInfo info;
      info.object_id = id;
      info.known = false;
      peers_->Send(from, MessageType::kObjectInfo, info);
      continue;
    }
    if (e->sealed && !objects_->RebuildIfLost(id)) {
      SendInfo(from, id);
    } else {  // answered once sealed (or sealed again, when it is being rebuilt)
      owned_[id].waiting.push_back(from);
    }
  }
}

void ObjectDirectory::SendInfo(uint32_t to, const ObjectID& id) {
  const ObjectTable::Entry* e = objects_->Find(id);
  protocol::ObjectInfo info;
  info.object_id = id;
  if (e == nullptr || !e->sealed) {
    info.known = e != nullptr;
  } else {
    info.value = objects_->ValueForPeer(id);
    info.locations = LocationsOf(id);
    if (objects_->HasLocalCopy(id)) info.locations.insert(info.locations.begin(), local_);
  }
  peers_->Send(to, MessageType::kObjectInfo, info);
}

void ObjectDirectory::OnOwnedSealed(const ObjectID& id) {
  auto it = owned_.find(id);
  if (it == owned_.end() || it->second.waiting.empty()) return;
  std::vector<uint32_t> waiting = std::move(it->second.waiting);
  it->second.waiting.clear();
  for (uint32_t node : waiting) SendInfo(node, id);
}

void ObjectDirectory::OnOwnedFreed(const ObjectID& id) {
  auto it = owned_.find(id);
  if (it == owned_.end()) return;
  std::set<uint32_t> holders = it->second.locations;
  if (it->second.primary != 0) holders.insert(it->second.primary);
  for (uint32_t node : holders) {
    if (node == local_) continue;
    ++stats_.frees_sent;
    Queue(free_, node, id);
  }
  owned_.erase(it);
}

void ObjectDirectory::SetPrimary(const ObjectID& id, uint32_t node) {
  Owned& o = owned_[id];
  o.primary = node;
  o.locations.insert(node);
}

// ------------------------------------------------------------------------------ copies

void ObjectDirectory::OnAddLocation(uint32_t from, const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    if (OwnerOf(id) != local_) continue;
    if (objects_->Find(id) == nullptr) {
      Queue(free_, from, id);  // freed meanwhile: the new copy must go too
      continue;
    }
    owned_[id].locations.insert(from);
  }
}

void ObjectDirectory::OnRemoveLocation(uint32_t from, const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    auto it = owned_.find(id);
    if (it != owned_.end() && it->second.primary != from) it->second.locations.erase(from);
  }
}

void ObjectDirectory::CopyAdded(const ObjectID& id) {
  uint32_t owner = OwnerOf(id);
  if (owner == local_) return;  // our own objects' local copies need no report
  Queue(add_location_, owner, id);
}

void ObjectDirectory::CopyDropped(const ObjectID& id) {
  uint32_t owner = OwnerOf(id);
  if (owner == local_) return;
  Queue(remove_location_, owner, id);
}

std::vector<uint32_t> ObjectDirectory::LocationsOf(const ObjectID& id) const {
  std::vector<uint32_t> out;
  auto o = owned_.find(id);
  if (o != owned_.end()) {
    if (o->second.primary != 0 && o->second.primary != local_) out.push_back(o->second.primary);
    for (uint32_t n : o->second.locations) {
      if (n != local_ && n != o->second.primary) out.push_back(n);
    }
  }
  auto b = borrowed_.find(id);
  if (b != borrowed_.end()) {
    for (uint32_t n : b->second.locations) {
      if (n != local_ && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
  }
  return out;
}

void ObjectDirectory::NoteLocations(const ObjectID& id, const std::vector<uint32_t>& nodes) {
  auto& known = borrowed_[id].locations;
  for (uint32_t n : nodes) {
    if (std::find(known.begin(), known.end(), n) == known.end()) known.push_back(n);
  }
}

// ------------------------------------------------------------------------------ barrier

void ObjectDirectory::DeferRelease(std::function<void()> send) {
  uint64_t barrier = next_seq_ - 1;  // every registration issued so far
  if (deferred_.empty() && (pending_seqs_.empty() || *pending_seqs_.begin() > barrier)) {
    send();
    return;
  }
  deferred_.emplace_back(barrier, std::move(send));
}

void ObjectDirectory::RunDeferred() {
  while (!deferred_.empty()) {
    uint64_t barrier = deferred_.front().first;
    if (!pending_seqs_.empty() && *pending_seqs_.begin() <= barrier) return;
    auto send = std::move(deferred_.front().second);
    deferred_.pop_front();
    send();
  }
}

void ObjectDirectory::Flush() {
  if (!orphaned_.empty()) {
    std::vector<ObjectID> orphaned;
    orphaned.swap(orphaned_);
    for (const auto& id : orphaned) {
      uint32_t owner = OwnerOf(id);
      const protocol::NodeInfo* n = view_->Find(owner);
      std::string why = n == nullptr ? "object " + id.Hex() + " names node " + std::to_string(owner) +
                                           " as its owner, which is not part of this cluster (a ref from "
                                           "another cluster, or a forged id)"
                                     : "object " + id.Hex() + " is lost: its owner, node " +
                                           std::to_string(owner) + ", died (" + n->death_reason + ")";
      objects_->SealBorrowed(id, SystemError(n == nullptr ? ObjectKind::kObjectLost : ObjectKind::kOwnerDied, why), {});
    }
  }
  auto send_all = [this](std::unordered_map<uint32_t, std::vector<ObjectID>>& pending, MessageType type) {
    // Taken first: sending runs PeerManager's before_send hook, which calls Flush again.
    std::unordered_map<uint32_t, std::vector<ObjectID>> batch;
    batch.swap(pending);
    for (auto& [node, ids] : batch) {
      if (!ids.empty()) peers_->Send(node, type, protocol::IdList{std::move(ids)});
    }
  };
  // Registrations first: anything sent after them must not overtake them.
  send_all(add_borrower_, MessageType::kAddBorrower);
  send_all(subscribe_, MessageType::kSubscribeObject);
  send_all(add_location_, MessageType::kAddLocation);
  send_all(remove_location_, MessageType::kRemoveLocation);
  send_all(remove_borrower_, MessageType::kRemoveBorrower);
  send_all(free_, MessageType::kFreeObject);
}

void ObjectDirectory::OnNodeDead(uint32_t node) {
  // Borrows registered with it will never be acknowledged: the barrier must not wait for them.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (OwnerOf(it->first) == node) {
      for (uint64_t seq : it->second) pending_seqs_.erase(seq);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  RunDeferred();
  std::vector<ObjectID> release;
  for (auto& [id, o] : owned_) {
    auto b = o.borrowers.find(node);
    if (b != o.borrowers.end()) {
      for (int i = 0; i < b->second; ++i) release.push_back(id);
      o.borrowers.erase(b);
    }
    o.locations.erase(node);
    if (o.primary == node) o.primary = 0;
    o.waiting.erase(std::remove(o.waiting.begin(), o.waiting.end(), node), o.waiting.end());
  }
  for (auto& [id, b] : borrowed_) b.locations.erase(std::remove(b.locations.begin(), b.locations.end(), node), b.locations.end());
  std::vector<ObjectID> orphans;  // unsealed borrows of the dead node's objects: their value never comes
  objects_->table().ForEach([&](const ObjectID& id, const ObjectTable::Entry& e) {
    if (e.borrowed && !e.sealed && OwnerOf(id) == node) orphans.push_back(id);
  });
  for (auto* batch : {&add_borrower_, &remove_borrower_, &subscribe_, &free_, &add_location_, &remove_location_}) {
    batch->erase(node);
  }
  objects_->Release(release);
  for (const auto& id : orphans) {
    objects_->SealBorrowed(id, SystemError(ObjectKind::kOwnerDied, "object " + id.Hex() + " is lost: its owner, node " +
                                                                       std::to_string(node) + ", died before its value reached this node"),
                           {});
  }
}

}  // namespace quanta
