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

// The name rows show: the function, or Class.method (Class.__init__ for an actor's creation),
// interned: a normal task's name is looked up as it is, without building a string.
uint32_t TaskEventBuffer::NameOf(const protocol::TaskSpec& spec) {
  const std::string* name = &spec.name;
  if (spec.kind == protocol::TaskKind::kActorMethod) {
    if (!spec.method.empty() && spec.name.find(spec.method) == std::string::npos) {
      name_scratch_.assign(spec.name).append(".").append(spec.method);
      name = &name_scratch_;
    }
  } else if (spec.kind == protocol::TaskKind::kActorCreation && !spec.actor.class_name.empty()) {
    name_scratch_.assign(spec.actor.class_name).append(".__init__");
    name = &name_scratch_;
  }
  return names_.Intern(*name);  // 0 (shown without a name) once the table is full
}

uint32_t TaskEventBuffer::Intern(const protocol::ResourceMap& resources) {
  return resources_.Intern(resources);
}

void TaskEventBuffer::PopFront() {
  Entry& e = ring_[head_];
  if (e.has_error) errors_.erase(e.seq);
  head_ = (head_ + 1) % ring_.size();
  --count_;
  ++first_seq_;
}

TaskEventBuffer::Entry& TaskEventBuffer::EntryFor(Task& task, TaskEventKind kind) {
  ++recorded_;
  uint32_t attempt = TaskAttempt(task.spec, task.retries_left, task.is_remote());
  uint64_t seq = task.event_seq;
  if (seq >= first_seq_ && seq < first_seq_ + count_) {
    Entry& e = At(seq - first_seq_);
    if (e.task_id == task.spec.task_id && e.attempt == attempt) {
      if (static_cast<uint8_t>(kind) > static_cast<uint8_t>(e.kind)) e.kind = kind;
      return e;
    }
  }
  if (count_ >= options_.capacity) {  // full: the oldest goes
    PopFront();
    ++dropped_;
  }
  if (count_ == ring_.size()) {  // grow (up to the capacity), the oldest first again
    std::rotate(ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(head_), ring_.end());
    head_ = 0;
    ring_.resize(std::min(options_.capacity, std::max<size_t>(64, ring_.size() * 2)));
  }
  task.event_seq = first_seq_ + count_;
  Entry& e = ring_[(head_ + count_) % ring_.size()];
  ++count_;
  e = Entry{};
  e.seq = task.event_seq;
  e.task_id = task.spec.task_id;
  e.kind = kind;
  e.task_kind = static_cast<uint8_t>(task.spec.kind);
  e.attempt = attempt;
  e.job_id = task.spec.job_id;
  e.actor_id = task.spec.actor_id;
  return e;
}

void TaskEventBuffer::Submitted(Task& task) {
  if (!enabled()) return;
  Entry& e = EntryFor(task, TaskEventKind::kSubmitted);
  e.submitted_us = NowUs();
  e.name = NameOf(task.spec);
  e.resources = Intern(task.spec.resources);
}

void TaskEventBuffer::Scheduled(Task& task, uint32_t node) {
  if (!enabled()) return;
  Entry& e = EntryFor(task, TaskEventKind::kScheduled);
  e.scheduled_us = NowUs();
  e.placed_on = node;
}

void TaskEventBuffer::Running(Task& task, uint32_t worker_pid, uint64_t worker_id, uint32_t ran_on) {
  if (!enabled()) return;
  Entry& e = EntryFor(task, TaskEventKind::kRunning);
  e.running_us = NowUs();
  if (e.name == 0) e.name = NameOf(task.spec);  // the owner's submission may reach the head later
  e.worker_pid = worker_pid;
  e.worker_id = worker_id;
  e.ran_on = ran_on;
}

void TaskEventBuffer::Ended(Task& task, const protocol::ObjectValue* error) {
  if (!enabled()) return;
  Entry& e = EntryFor(task, error ? TaskEventKind::kFailed : TaskEventKind::kFinished);
  e.end_us = NowUs();
  if (error == nullptr) return;
  e.error_kind = static_cast<uint8_t>(error->kind);
  static const std::string kRaised = "the task raised an exception";
  // A task error's value is a pickle: its text comes from the worker (task.error_text).
  const std::string& t = !task.error_text.empty()                   ? task.error_text
                         : error->kind == protocol::ObjectKind::kTaskError ? kRaised
                                                                           : error->data;
  // The end of a traceback says the most: keep the head's line and the tail.
  std::string& text = errors_[e.seq];
  e.has_error = true;
  if (t.size() <= kMaxErrorBytes) {
    text = t;
  } else {
    text = t.substr(0, 512) + "\n...(" + std::to_string(t.size() - kMaxErrorBytes) + " bytes cut)...\n" +
           t.substr(t.size() - (kMaxErrorBytes - 600));
  }
}

void TaskEventBuffer::Transferred(const protocol::TransferEvent& transfer) {
  if (!enabled()) return;
  if (transfers_.size() >= kMaxTransfers) {
    transfers_.pop_front();
    ++transfers_dropped_;
  }
  transfers_.push_back(transfer);
}

void TaskEventBuffer::Batch::Encode(protocol::Writer& w) const {
  const TaskEventBuffer& b = *buffer;
  w.U32(b.node_);
  w.U64(b.dropped_);
  w.U32(static_cast<uint32_t>(count));
  TaskEvent& out = b.scratch_;
  for (size_t i = 0; i < count; ++i) {
    const Entry& e = b.At(i);
    out.task_id = e.task_id;
    out.kind = e.kind;
    out.task_kind = e.task_kind;
    out.attempt = e.attempt;
    out.node = b.node_;
    out.placed_on = e.placed_on;
    out.submitted_us = e.submitted_us;
    out.scheduled_us = e.scheduled_us;
    out.running_us = e.running_us;
    out.end_us = e.end_us;
    out.job_id = e.job_id;
    out.actor_id = e.actor_id;
    out.name = b.names_[e.name];
    out.resources = b.resources_[e.resources];
    out.worker_pid = e.worker_pid;
    out.worker_id = e.worker_id;
    out.ran_on = e.ran_on;
    out.error_kind = e.error_kind;
    out.error.clear();
    if (e.has_error) {
      auto it = b.errors_.find(e.seq);
      if (it != b.errors_.end()) out.error = it->second;
    }
    out.Encode(w);
  }
  w.U64(b.transfers_dropped_);
  w.U32(static_cast<uint32_t>(transfers));
  for (size_t i = 0; i < transfers; ++i) b.transfers_[i].Encode(w);
}

size_t TaskEventBuffer::Flush(const Sender& send) {
  size_t sent = 0;
  while (count_ != 0 || !transfers_.empty()) {
    size_t n = std::min(count_, options_.max_batch);
    if (!send(Batch{this, n, transfers_.size()})) break;  // kept for the next flush
    for (size_t i = 0; i < n; ++i) PopFront();
    transfers_.clear();
    sent += n;
  }
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
