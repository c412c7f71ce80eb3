#include "node/pull_manager.h"

#include <algorithm>
#include <cstring>

#include "common/logging.h"
#include "common/random.h"

namespace quanta {

using protocol::MessageType;

namespace {
constexpr int kMaxWaitsForSpace = 300;  // x 100 ms
constexpr auto kWaitForSpace = std::chrono::milliseconds(100);
// A transfer that makes no progress for this long (plus size / 50 MB/s) is abandoned.
constexpr auto kBaseDeadline = std::chrono::milliseconds(10000);
// A source whose attempt broke while it still counts as alive is asked again after this pause,
// until this long after the first break (twice the default heartbeat timeout).
constexpr auto kBrokenPause = std::chrono::milliseconds(250);
constexpr auto kMaxBrokenWait = std::chrono::milliseconds(6000);

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

PullManager::PullManager(net::EventLoop* loop, SharedStore* store, ObjectDirectory* directory, PeerManager* peers,
                         TransferService* transfer, const ClusterView* view)
    : loop_(loop), store_(store), directory_(directory), peers_(peers), transfer_(transfer), view_(view) {
  // Transfer ids are random at start so a node that restarts never matches old chunks.
  std::string seed = RandomBytes(8);
  std::memcpy(&next_transfer_, seed.data(), 8);
  next_transfer_ |= 1;
}

void PullManager::EnsureLocal(const ObjectID& id, uint64_t size, std::vector<uint32_t> locations, Done done) {
  if (store_ != nullptr && store_->IsSealed(id)) {
    done(Status::Ok());
    return;
  }
  if (store_ == nullptr) {
    done(Status::InvalidArgument("this node has no shared-memory store to receive object " + id.Hex()));
    return;
  }
  auto [it, fresh] = pulls_.try_emplace(id);
  Pull& pull = it->second;
  for (uint32_t n : locations) {
    if (std::find(pull.candidates.begin(), pull.candidates.end(), n) == pull.candidates.end()) pull.candidates.push_back(n);
  }
  pull.waiters.push_back(std::move(done));
  if (!fresh) return;
  pull.size = size;
  ++stats_.pulls_started;
  Attempt(id);
}

void PullManager::Attempt(const ObjectID& id) {
  auto it = pulls_.find(id);
  if (it == pulls_.end()) return;
  Pull& pull = it->second;
  // The next location that is alive and not us.
  uint32_t source = 0;
  while (source == 0) {
    while (pull.next < pull.candidates.size()) {
      uint32_t n = pull.candidates[pull.next++];
      if (n != view_->local_index() && view_->IsAlive(n)) {
        source = n;
        break;
      }
    }
    if (source != 0) break;
    if (pull.refreshed) {
      // Sources whose attempt broke but that still count as alive: ask them again after a
      // pause rather than report the object lost while its holder's death is not yet known.
      std::vector<uint32_t> again;
      for (uint32_t n : pull.broken) {
        if (view_->IsAlive(n) && std::find(again.begin(), again.end(), n) == again.end()) again.push_back(n);
      }
      pull.broken.clear();
      if (again.empty() || std::chrono::steady_clock::now() - pull.first_broken > kMaxBrokenWait) break;
      pull.candidates = std::move(again);
      pull.next = 0;
      pull.refreshed = false;  // the directory may know of new copies by then
      loop_->RunAfter(kBrokenPause, [this, id] { Attempt(id); });
      return;
    }
    pull.refreshed = true;
    for (uint32_t n : directory_->LocationsOf(id)) {
      if (std::find(pull.candidates.begin(), pull.candidates.end(), n) == pull.candidates.end()) pull.candidates.push_back(n);
    }
  }
  if (source == 0) {
    Finish(id, Status::NotFound("no node holds a copy of object " + id.Hex() + " any more" +
                                (pull.last_error.empty() ? std::string() : " (last attempt: " + pull.last_error + ")")));
    return;
  }
  auto offset = store_->Create(id, pull.size, SharedStore::kTransferWriter);
  if (!offset.ok()) {
    // Waiting helps only if the object fits the store at all.
    bool could_fit = pull.size <= store_->memory().size();
    if (offset.status().code() == StatusCode::kResourceExhausted && could_fit &&
        ++pull.waits_for_space < kMaxWaitsForSpace) {
      --pull.next;  // same location, once there is room
      loop_->RunAfter(kWaitForSpace, [this, id] { Attempt(id); });
      return;
    }
    Finish(id, offset.status());
    return;
  }
  pull.source = source;
  pull.transfer_id = next_transfer_++;
  by_transfer_[pull.transfer_id] = id;
  pull.asked_us = WallUs();
  transfer_->Expect(pull.transfer_id, store_->DataAt(offset.value()), pull.size);
  peers_->Send(source, MessageType::kPullObject, protocol::PullObject{id, pull.transfer_id, pull.size});
  uint64_t tid = pull.transfer_id;
  auto deadline = kBaseDeadline + std::chrono::milliseconds(pull.size / (50u << 10));
  loop_->RunAfter(std::chrono::duration_cast<std::chrono::milliseconds>(deadline), [this, id, tid, deadline] {
    if (!by_transfer_.count(tid)) return;
    auto it = pulls_.find(id);
    if (it != pulls_.end() && it->second.transfer_id == tid) {
      it->second.abandon_reason = "no complete copy within " +
                                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(deadline).count()) + " s";
    }
    transfer_->Abandon(tid);  // its OnReceived(error) moves on
  });
}

void PullManager::OnReceived(uint64_t transfer_id, const Status& result) {
  auto t = by_transfer_.find(transfer_id);
  if (t == by_transfer_.end()) return;
  ObjectID id = t->second;
  by_transfer_.erase(t);
  auto it = pulls_.find(id);
  if (it == pulls_.end()) {
    store_->AbortCreate(id, SharedStore::kTransferWriter);
    return;
  }
  Pull& pull = it->second;
  pull.transfer_id = 0;
  if (result.ok()) {
    Status st = store_->Seal(id, SharedStore::kTransferWriter);
    if (st.ok()) {
      store_->MarkSecondary(id);
      stats_.bytes_pulled += pull.size;
      directory_->CopyAdded(id);
      if (on_pulled_) {
        on_pulled_(protocol::TransferEvent{id, pull.size, pull.source, view_->local_index(), pull.asked_us, WallUs()});
      }
    }
    Finish(id, st);
    return;
  }
  store_->AbortCreate(id, SharedStore::kTransferWriter);  // nothing half-written stays visible
  ++stats_.retries;
  // An attempt this node abandoned reports only "abandoned": the reason it was abandoned (the
  // holder's refusal, its death, the deadline) is what the readers need to hear.
  pull.last_error = "from node " + std::to_string(pull.source) + ": " +
                    (pull.abandon_reason.empty() ? result.message() : pull.abandon_reason);
  pull.abandon_reason.clear();
  if (!pull.refused && view_->IsAlive(pull.source)) {
    if (pull.first_broken == std::chrono::steady_clock::time_point{}) {
      pull.first_broken = std::chrono::steady_clock::now();
    }
    pull.broken.push_back(pull.source);
  }
  pull.refused = false;
  QLOG(kWarning) << "pull of " << id.Hex() << " " << pull.last_error << "; trying another copy";
  Attempt(id);
}

void PullManager::Finish(const ObjectID& id, const Status& result) {
  auto it = pulls_.find(id);
  if (it == pulls_.end()) return;
  std::vector<Done> waiters = std::move(it->second.waiters);
  pulls_.erase(it);
  if (result.ok()) {
    ++stats_.pulls_done;
  } else {
    ++stats_.pulls_failed;
  }
  for (auto& done : waiters) done(result);
}

void PullManager::OnPullFailed(uint32_t from, const protocol::PullFailed& msg) {
  auto t = by_transfer_.find(msg.transfer_id);
  if (t == by_transfer_.end()) return;
  auto it = pulls_.find(t->second);
  if (it != pulls_.end() && it->second.source == from) {
    it->second.abandon_reason = msg.reason;
    it->second.refused = true;
    transfer_->Abandon(msg.transfer_id);
  }
}

void PullManager::OnPullRequest(uint32_t from, const protocol::PullObject& msg) {
  auto fail = [&](const std::string& why) {
    peers_->Send(from, MessageType::kPullFailed, protocol::PullFailed{msg.transfer_id, why});
  };
  const protocol::NodeInfo* peer = view_->Find(from);
  if (store_ == nullptr || !store_->IsSealed(msg.object_id)) return fail("no copy of the object here");
  if (store_->SizeOf(msg.object_id) != msg.size) return fail("size mismatch");
  if (peer == nullptr || !peer->alive || peer->port == 0) return fail("unknown requester");
  auto offset = store_->Pin(msg.object_id, SharedStore::kTransferReader);
  if (!offset.ok()) return fail(offset.status().message());
  uint64_t send_id = next_send_++;
  sends_[send_id] = msg.object_id;
  ++stats_.sends;
  stats_.bytes_served += msg.size;
  transfer_->Send(from, peer->address, static_cast<uint16_t>(peer->port), msg.transfer_id,
                  store_->DataAt(offset.value()), msg.size, send_id);
}

void PullManager::OnSent(uint64_t send_id, const Status& result) {
  auto it = sends_.find(send_id);
  if (it == sends_.end()) return;
  store_->Unpin(it->second, SharedStore::kTransferReader, 1);
  sends_.erase(it);
  (void)result;  // a failed send is the receiver's to retry
}

void PullManager::OnNodeDead(uint32_t node) {
  std::vector<uint64_t> abandon;
  for (auto& [id, pull] : pulls_) {
    if (pull.source == node && pull.transfer_id != 0) {
      pull.abandon_reason = "the node died";
      abandon.push_back(pull.transfer_id);
    }
  }
  for (uint64_t tid : abandon) transfer_->Abandon(tid);
}

}  // namespace quanta
