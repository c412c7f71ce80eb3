// The node's record of what happens to tasks — submitted, placed, running, finished or failed —
// kept in a bounded ring buffer and shipped to the control service in batches, where the head's
// TaskEventTable (control/task_event_table.h) merges them into the rows `quanta list tasks`
// shows. Protocol: protocol/task_event_messages.h.
//
// Recording is cheap (a wall-clock read and a copy into a slot of the ring, whose strings keep
// their capacity); nothing is sent per event. Flush() hands the sender up to max_batch of the
// oldest events as a Batch that encodes them straight from the ring into the outgoing frame (a
// TaskEventBatch on the wire); a sender that cannot send (the control service is not
// reachable) leaves them in the buffer.
// When the buffer is full the oldest event is dropped and counted; every batch carries the
// count, so the head can report the loss. capacity 0 turns recording off.
//
// Ownership: owned by the NodeServer; the TaskManager and the WorkerDispatcher record into it.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "protocol/task_event_messages.h"

namespace quanta {

class TaskEventBuffer {
 public:
  static constexpr size_t kMaxErrorBytes = 8 << 10;  // an error's text is clipped to this
  struct Options {
    size_t capacity = 100000;  // events held at most (0: record nothing)
    size_t max_batch = 10000;  // events per batch
  };
  // Up to max_batch consecutive events of the ring, encoded as a protocol::TaskEventBatch.
  struct Batch {
    const TaskEventBuffer* buffer;
    size_t first, count;  // ring positions
    void Encode(protocol::Writer& w) const;
  };
  // Sends one batch; false if it could not (the events stay, in order).
  using Sender = std::function<bool(const Batch&)>;

  explicit TaskEventBuffer(Options options);

  bool enabled() const { return options_.capacity != 0; }
  // The node index events are recorded under (known once the node joined).
  void set_node(uint32_t node) { node_ = node; }

  void Submitted(const protocol::TaskSpec& spec, uint32_t attempt);
  void Scheduled(const protocol::TaskSpec& spec, uint32_t attempt, uint32_t node);
  void Running(const protocol::TaskSpec& spec, uint32_t attempt, uint32_t worker_pid, uint64_t worker_id);
  // Finished, or failed with `error` (its kind and text; `text` overrides the value's own text,
  // e.g. the traceback the worker sent).
  void Ended(const protocol::TaskSpec& spec, uint32_t attempt, const protocol::ObjectValue* error,
             const std::string& text);

  // Sends batches of the oldest events while the sender takes them; returns events sent.
  size_t Flush(const Sender& send);
  // A full batch is waiting (worth flushing before the next tick).
  bool batch_ready() const { return size_ >= options_.max_batch; }

  size_t size() const { return size_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t recorded() const { return recorded_; }

 private:
  protocol::TaskEvent& Add(const protocol::TaskSpec& spec, protocol::TaskEventKind kind, uint32_t attempt);

  Options options_;
  uint32_t node_ = 0;
  std::vector<protocol::TaskEvent> ring_;  // grows to capacity, then reused
  size_t head_ = 0;                        // oldest event
  size_t size_ = 0;
  uint64_t dropped_ = 0;
  uint64_t recorded_ = 0;
};

// The attempt a task's events are recorded under: 0 first, +1 per retry (its owner counts;
// a node running a forwarded task adds its own retries to the owner's count in the spec).
uint32_t TaskAttempt(const protocol::TaskSpec& spec, int retries_left, bool remote);

}  // namespace quanta
