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

// The name rows show: the function, or Class.method (Class.__init__ for an actor's creation).
void SetName(const protocol::TaskSpec& spec, std::string* name) {
  if (spec.kind == protocol::TaskKind::kActorMethod) {
    *name = spec.name;
    if (!spec.method.empty() && spec.name.find(spec.method) == std::string::npos) *name += "." + spec.method;
  } else if (spec.kind == protocol::TaskKind::kActorCreation && !spec.actor.class_name.empty()) {
    *name = spec.actor.class_name + ".__init__";
  } else {
    *name = spec.name;
  }
}
}  // namespace

TaskEventBuffer::TaskEventBuffer(Options options) : options_(options) {
  if (options_.max_batch == 0) options_.max_batch = 1;
}

TaskEvent& TaskEventBuffer::EntryFor(Task& task, TaskEventKind kind) {
  ++recorded_;
  uint32_t attempt = TaskAttempt(task.spec, task.retries_left, task.is_remote());
  uint64_t seq = task.event_seq;
  if (seq >= first_seq_ && seq < first_seq_ + entries_.size()) {
    TaskEvent& e = entries_[seq - first_seq_];
    if (e.task_id == task.spec.task_id && e.attempt == attempt) {
      if (static_cast<uint8_t>(kind) > static_cast<uint8_t>(e.kind)) e.kind = kind;
      return e;
    }
  }
  if (entries_.size() >= options_.capacity) {  // full: the oldest goes
    entries_.pop_front();
    ++first_seq_;
    ++dropped_;
  }
  task.event_seq = first_seq_ + entries_.size();
  TaskEvent& e = entries_.emplace_back();
  e.task_id = task.spec.task_id;
  e.kind = kind;
  e.task_kind = static_cast<uint8_t>(task.spec.kind);
  e.attempt = attempt;
  e.node = node_;
  e.job_id = task.spec.job_id;
  e.actor_id = task.spec.actor_id;
  return e;
}

void TaskEventBuffer::Submitted(Task& task) {
  if (!enabled()) return;
  TaskEvent& e = EntryFor(task, TaskEventKind::kSubmitted);
  e.submitted_us = NowUs();
  SetName(task.spec, &e.name);
  e.resources = task.spec.resources;
}

void TaskEventBuffer::Scheduled(Task& task, uint32_t node) {
  if (!enabled()) return;
  TaskEvent& e = EntryFor(task, TaskEventKind::kScheduled);
  e.scheduled_us = NowUs();
  e.placed_on = node;
}

void TaskEventBuffer::Running(Task& task, uint32_t worker_pid, uint64_t worker_id) {
  if (!enabled()) return;
  TaskEvent& e = EntryFor(task, TaskEventKind::kRunning);
  e.running_us = NowUs();
  if (e.name.empty()) SetName(task.spec, &e.name);  // the owner's submission may reach the head later
  e.worker_pid = worker_pid;
  e.worker_id = worker_id;
}

void TaskEventBuffer::Ended(Task& task, const protocol::ObjectValue* error) {
  if (!enabled()) return;
  TaskEvent& e = EntryFor(task, error ? TaskEventKind::kFailed : TaskEventKind::kFinished);
  e.end_us = NowUs();
  if (error == nullptr) return;
  e.error_kind = static_cast<uint8_t>(error->kind);
  static const std::string kRaised = "the task raised an exception";
  // A task error's value is a pickle: its text comes from the worker (task.error_text).
  const std::string& t = !task.error_text.empty()                   ? task.error_text
                         : error->kind == protocol::ObjectKind::kTaskError ? kRaised
                                                                           : error->data;
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
  for (size_t i = 0; i < count; ++i) {
    const TaskEvent& e = buffer->entries_[i];
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
  while (!entries_.empty()) {
    size_t n = std::min(entries_.size(), options_.max_batch);
    if (!send(Batch{this, n})) break;  // kept for the next flush
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
    first_seq_ += n;
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
