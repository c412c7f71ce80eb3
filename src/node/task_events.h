// The node's record of what happens to tasks — submitted, placed, running, finished or failed —
// kept in a bounded ring buffer and shipped to the control service in batches, where the head's
// TaskEventTable (control/task_event_table.h) merges them into the rows `quanta list tasks`
// shows. Protocol: protocol/task_event_messages.h.
//
// One entry per task and attempt while it waits to be shipped: a later stage of a task whose
// entry is still in the buffer updates that entry in place (the Task remembers its entry's
// sequence number), so a task that runs between two flushes costs one entry and one encoded
// record, not one per stage. Recording is a clock read and a few field writes; nothing is sent
// per event. Flush() hands the sender up to max_batch of the oldest entries as a Batch that
// encodes them straight from the buffer into the outgoing frame; a sender that cannot send (the
// control service is not reachable) leaves them in the buffer. When the buffer is full the
// oldest entry is dropped and counted; every batch carries the count, so the head can report
// the loss. capacity 0 turns recording off.
//
// Ownership: owned by the NodeServer; the TaskManager and the WorkerDispatcher record into it.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "node/task.h"
#include "protocol/task_event_messages.h"

namespace quanta {

class TaskEventBuffer {
 public:
  static constexpr size_t kMaxErrorBytes = 8 << 10;  // an error's text is clipped to this
  struct Options {
    size_t capacity = 100000;  // entries held at most (0: record nothing)
    size_t max_batch = 10000;  // entries per batch
  };
  // Up to max_batch consecutive entries, encoded as a protocol::TaskEventBatch.
  struct Batch {
    const TaskEventBuffer* buffer;
    size_t count;  // from the oldest
    void Encode(protocol::Writer& w) const;
  };
  // Sends one batch; false if it could not (the entries stay, in order).
  using Sender = std::function<bool(const Batch&)>;

  explicit TaskEventBuffer(Options options);

  bool enabled() const { return options_.capacity != 0; }
  // The node index events are recorded under (known once the node joined).
  void set_node(uint32_t node) { node_ = node; }

  void Submitted(Task& task);
  void Scheduled(Task& task, uint32_t node);
  void Running(Task& task, uint32_t worker_pid, uint64_t worker_id);
  // Finished, or failed with `error` (its kind; its text is task.error_text when the worker sent
  // one, e.g. a traceback, else the value's own text for the system's errors).
  void Ended(Task& task, const protocol::ObjectValue* error);

  // Sends batches of the oldest entries while the sender takes them; returns entries sent.
  size_t Flush(const Sender& send);
  // A full batch is waiting (worth flushing before the next tick).
  bool batch_ready() const { return entries_.size() >= options_.max_batch; }

  size_t size() const { return entries_.size(); }
  uint64_t dropped() const { return dropped_; }
  uint64_t recorded() const { return recorded_; }  // stages recorded (several may share an entry)

 private:
  // The task's entry for its current attempt, reused while it waits here, else a new one.
  protocol::TaskEvent& EntryFor(Task& task, protocol::TaskEventKind kind);

  Options options_;
  uint32_t node_ = 0;
  std::deque<protocol::TaskEvent> entries_;  // oldest first
  uint64_t first_seq_ = 1;                   // sequence number of entries_.front()
  uint64_t dropped_ = 0;
  uint64_t recorded_ = 0;
};

// The attempt a task's events are recorded under: 0 first, +1 per retry (its owner counts;
// a node running a forwarded task adds its own retries to the owner's count in the spec).
uint32_t TaskAttempt(const protocol::TaskSpec& spec, int retries_left, bool remote);

}  // namespace quanta
