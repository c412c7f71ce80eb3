// CoreClient: streaming generators. Consumer side: the items the node pushes for a generator
// this process submitted, handed out in order. Producer side: sending items and pausing for
// backpressure. See core_client.h.
#include <unistd.h>

#include "core/core_client.h"
#include "core/deadline.h"

namespace quanta {

using protocol::MessageType;

bool CoreClient::OnGeneratorItemPushed(const ObjectID& id) {
  uint32_t index = id.Index();
  if (index == 0 || index == ObjectID::kPutIndex) return true;
  auto s = streams_.find(id.TaskId());
  if (s == streams_.end()) return true;
  Stream& stream = s->second;
  if (index == 1) {  // the completion object: every item came before it
    stream.finished = true;
    if (!stream.dropped) return true;
    streams_.erase(s);
    // GeneratorRelease kept a reference to it so that this push comes: drop it now.
    auto it = objects_.find(id);
    if (it != objects_.end() && --it->second.refs == 0) {
      if (it->second.Unused()) objects_.erase(it);
      pending_deltas_[id] -= 1;
    }
    return false;
  }
  uint64_t k = index - 2;
  // A later delivery of an item we have (a pinned location), or had and released: as for any id.
  if (k < stream.received || objects_.count(id)) return true;
  stream.received = k + 1;
  if (stream.dropped) {
    // A new item: the node counted us as a holder, but nobody here will use it.
    bool wake = pending_deltas_.empty();
    pending_deltas_[id] -= 1;
    if (wake) {
      uint64_t one = 1;
      ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
      (void)ignored;
    }
    return false;
  }
  Local& l = objects_[id];
  l.refs += 1;  // the node's count for us; the ObjectRef that next() makes adopts it
  l.subscribed = true;
  notify_pending_ = true;
  return true;
}

bool CoreClient::GeneratorItemReady(const ObjectID& id) const {
  if (id.Index() < 2 || id.Index() == ObjectID::kPutIndex) return false;
  auto s = streams_.find(id.TaskId());
  return s != streams_.end() && (s->second.received > id.Index() - 2 || s->second.finished);
}

Result<CoreClient::NextItem> CoreClient::GeneratorNext(const TaskID& task, uint64_t index, int64_t timeout_ms) {
  NextItem result = NextItem::kTimedOut;
  bool ack = false, blocked = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = Deadline(timeout_ms);
    while (true) {
      auto s = streams_.find(task);
      if (s == streams_.end() || s->second.dropped) return Status::InvalidArgument("not a generator this process consumes");
      if (s->second.received > index) {
        result = NextItem::kReady;
        s->second.taken = std::max(s->second.taken, index + 1);
        ack = s->second.backpressure;
        break;
      }
      if (s->second.finished) {
        result = NextItem::kEnded;
        break;
      }
      if (closed_) return Status::Cancelled(close_reason_);
      if (timeout_ms == 0) break;
      if (!blocked && role_ == protocol::ClientRole::kWorker) {
        lock.unlock();
        SetBlocked(true);  // lend our CPU while we wait for another task's items
        blocked = true;
        lock.lock();
        continue;
      }
      if (AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline)) {
        auto again = streams_.find(task);
        if (again != streams_.end() && (again->second.received > index || again->second.finished)) continue;
        break;
      }
    }
  }
  if (blocked) SetBlocked(false);
  if (ack) QUANTA_RETURN_IF_ERROR(Send(MessageType::kGeneratorAck, protocol::GeneratorAck{task, index + 1}));
  return result;
}

void CoreClient::GeneratorRelease(const TaskID& task, uint64_t next_index) {
  bool ack = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto s = streams_.find(task);
    if (s == streams_.end()) return;
    Stream& stream = s->second;
    std::vector<ObjectID> unused;
    for (uint64_t k = next_index; k < stream.received; ++k) unused.push_back(task.ReturnId(static_cast<uint32_t>(k + 1)));
    ack = stream.backpressure && !stream.finished;
    if (stream.finished) {
      streams_.erase(s);
    } else {
      // Later items are released as they come; the completion's push ends the stream (we keep
      // a reference to it until then, so that it does come).
      stream.dropped = true;
      objects_[task.ReturnId(0)].refs += 1;
    }
    for (const auto& id : unused) {
      auto it = objects_.find(id);
      if (it == objects_.end() || --it->second.refs > 0) continue;
      if (it->second.Unused()) objects_.erase(it);
      if (!closed_) pending_deltas_[id] -= 1;
    }
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
  // The producer need not wait for us any more.
  if (ack) (void)Send(MessageType::kGeneratorAck, protocol::GeneratorAck{task, protocol::GeneratorItem::kMaxItems});
}

std::pair<uint64_t, bool> CoreClient::GeneratorState(const TaskID& task) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = streams_.find(task);
  if (s == streams_.end()) return {0, true};
  return {s->second.received, s->second.finished};
}

Status CoreClient::SendGeneratorItem(const protocol::GeneratorItem& msg) {
  return Send(MessageType::kGeneratorItem, msg);
}

void CoreClient::OnGeneratorAck(const protocol::GeneratorAck& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t& taken = generator_acks_[msg.task_id];
  taken = std::max(taken, msg.consumed);
  notify_pending_ = true;
}

bool CoreClient::GeneratorWait(const TaskID& task, uint64_t produced, uint32_t threshold, int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = Deadline(timeout_ms);
  auto room = [&] {
    auto it = generator_acks_.find(task);
    uint64_t taken = it == generator_acks_.end() ? 0 : it->second;
    return produced < taken + threshold;
  };
  while (!room()) {
    if (closed_) return true;  // the task ends with the connection anyway
    if (AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline)) return room();
  }
  return true;
}

}  // namespace quanta
