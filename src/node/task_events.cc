#include "node/task_events.h"

#include <algorithm>
#include <chrono>

namespace quanta {

using protocol::TaskEvent;
using protocol::TaskEventKind;

namespace {
int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

TaskEventBuffer::TaskEventBuffer(Options options) : options_(options) {
  if (options_.max_batch == 0) options_.max_batch = 1;
}

TaskEvent& TaskEventBuffer::Add(const protocol::TaskSpec& spec, TaskEventKind kind, uint32_t attempt) {
  ++recorded_;
  TaskEvent* e;
  if (size_ < ring_.size()) {  // a free slot (after a flush) in the allocated ring
    e = &ring_[(head_ + size_) % ring_.size()];
    ++size_;
  } else if (ring_.size() < options_.capacity) {  // still growing: made contiguous first
    if (head_ != 0) {
      std::rotate(ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(head_), ring_.end());
      head_ = 0;
    }
    ring_.emplace_back();
    e = &ring_.back();
    ++size_;
  } else {  // full: the oldest goes
    e = &ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    ++dropped_;
  }
  e->task_id = spec.task_id;
  e->kind = kind;
  e->task_kind = static_cast<uint8_t>(spec.kind);
  e->attempt = attempt;
  e->node = node_;
  e->time_us = NowUs();
  e->job_id = spec.job_id;
  e->actor_id = spec.actor_id;
  e->name.clear();  // a reused slot keeps its strings' capacity
  e->resources.clear();
  e->worker_pid = 0;
  e->worker_id = 0;
  e->error_kind = 0;
  e->error.clear();
  return *e;
}

// The name rows show: the function, or Class.method (Class.__init__ for an actor's creation).
static void SetName(const protocol::TaskSpec& spec, std::string* name) {
  if (spec.kind == protocol::TaskKind::kActorMethod) {
    *name = spec.name;
    if (!spec.method.empty() && spec.name.find(spec.method) == std::string::npos) *name += "." + spec.method;
  } else if (spec.kind == protocol::TaskKind::kActorCreation && !spec.actor.class_name.empty()) {
    *name = spec.actor.class_name + ".__init__";
  } else {
    *name = spec.name;
  }
}

void TaskEventBuffer::Submitted(const protocol::TaskSpec& spec, uint32_t attempt) {
  if (!enabled()) return;
  TaskEvent& e = Add(spec, TaskEventKind::kSubmitted, attempt);
  SetName(spec, &e.name);
  e.resources = spec.resources;
}

void TaskEventBuffer::Scheduled(const protocol::TaskSpec& spec, uint32_t attempt, uint32_t node) {
  if (!enabled()) return;
  Add(spec, TaskEventKind::kScheduled, attempt).node = node;
}

void TaskEventBuffer::Running(const protocol::TaskSpec& spec, uint32_t attempt, uint32_t worker_pid,
                              uint64_t worker_id) {
  if (!enabled()) return;
  TaskEvent& e = Add(spec, TaskEventKind::kRunning, attempt);
  SetName(spec, &e.name);  // the owner's submission may reach the head later (or not at all)
  e.worker_pid = worker_pid;
  e.worker_id = worker_id;
}

void TaskEventBuffer::Ended(const protocol::TaskSpec& spec, uint32_t attempt, const protocol::ObjectValue* error,
                            const std::string& text) {
  if (!enabled()) return;
  TaskEvent& e = Add(spec, error ? TaskEventKind::kFailed : TaskEventKind::kFinished, attempt);
  if (error == nullptr) return;
  e.error_kind = static_cast<uint8_t>(error->kind);
  static const std::string kRaised = "the task raised an exception";
  // A task error's value is a pickle: its text comes from the worker (`text`).
  const std::string& t = !text.empty() ? text : error->kind == protocol::ObjectKind::kTaskError ? kRaised : error->data;
  // The end of a traceback says the most: keep the head's line and the tail.
  if (t.size() <= kMaxErrorBytes) {
    e.error = t;
  } else {
    e.error = t.substr(0, 512) + "\n...(" + std::to_string(t.size() - kMaxErrorBytes) + " bytes cut)...\n" +
              t.substr(t.size() - (kMaxErrorBytes - 600));
  }
}

void TaskEventBuffer::Batch::Encode(protocol::Writer& w) const {
  w.U32(buffer->node_);
  w.U64(buffer->dropped_);
  w.U32(static_cast<uint32_t>(count));
  const auto& ring = buffer->ring_;
  for (size_t i = 0; i < count; ++i) {
    const TaskEvent& e = ring[(first + i) % ring.size()];
    if (e.node != 0) {
      e.Encode(w);
    } else {  // recorded before the node knew its index
      TaskEvent copy = e;
      copy.node = buffer->node_;
      copy.Encode(w);
    }
  }
}

size_t TaskEventBuffer::Flush(const Sender& send) {
  size_t sent = 0;
  while (size_ > 0) {
    size_t n = std::min(size_, options_.max_batch);
    if (!send(Batch{this, head_, n})) break;  // kept for the next flush
    head_ = (head_ + n) % ring_.size();
    size_ -= n;
    sent += n;
  }
  if (size_ == 0) head_ = 0;
  return sent;
}

uint32_t TaskAttempt(const protocol::TaskSpec& spec, int retries_left, bool remote) {
  uint32_t local = 0;
  if (spec.max_retries > 0 && retries_left >= 0 && retries_left <= spec.max_retries) {
    local = static_cast<uint32_t>(spec.max_retries - retries_left);
  }
  return remote ? spec.attempt + local : local;
}

}  // namespace quanta
