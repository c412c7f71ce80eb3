// The node's record of what happens to tasks — submitted, placed, running, finished or failed —
// kept in a bounded ring buffer and shipped to the control service in batches, where the head's
// TaskEventTable (control/task_event_table.h) merges them into the rows `quanta list tasks`
// shows. Protocol: protocol/task_event_messages.h.
//
// One entry per task and attempt while it waits to be shipped: a later stage of a task whose
// entry is still in the buffer updates that entry in place (the Task remembers its entry's
// sequence number), so a task that runs between two flushes costs one entry and one encoded
// record, not one per stage. Recording is a clock read and a few field writes into a
// preallocated ring of plain entries (function names and resource maps interned by id, so
// nothing is allocated or copied per task); nothing is sent per event. Flush() hands the sender up to max_batch of the oldest entries as a Batch that
// encodes them straight from the buffer into the outgoing frame; a sender that cannot send (the
// control service is not reachable) leaves them in the buffer. When the buffer is full the
// oldest entry is dropped and counted; every batch carries the count, so the head can report
// the loss. capacity 0 turns recording off. Completed object transfers (Transferred) wait in a
// small bounded queue of their own and go with the next batch.
//
// Ownership: owned by the NodeServer; the TaskManager and the WorkerDispatcher record into it.
// Thread-safety: loop thread only.
#pragma once

#include "common/intern_table.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "node/task.h"
#include "protocol/task_event_messages.h"

namespace quanta {

class TaskEventBuffer {
 public:
  static constexpr size_t kMaxErrorBytes = 8 << 10;  // an error's text is clipped to this
  static constexpr uint32_t kMaxInterned = 100000;   // distinct names (and resource maps) kept
  static constexpr size_t kMaxTransfers = 10000;     // object transfers kept until shipped
  struct Options {
    size_t capacity = 100000;  // entries held at most (0: record nothing)
    size_t max_batch = 10000;  // entries per batch
  };
  // Up to max_batch consecutive entries (and the transfers waiting, in the first batch),
  // encoded as a protocol::TaskEventBatch.
  struct Batch {
    const TaskEventBuffer* buffer;
    size_t count;  // from the oldest
    size_t transfers;
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
  // `ran_on`: the node whose worker runs it, when not this one (an actor call this node sent on a
  // lane, which that node's daemon never sees); 0: this node.
  void Running(Task& task, uint32_t worker_pid, uint64_t worker_id, uint32_t ran_on = 0);
  // Finished, or failed with `error` (its kind; its text is task.error_text when the worker sent
  // one, e.g. a traceback, else the value's own text for the system's errors).
  void Ended(Task& task, const protocol::ObjectValue* error);
  // An object's bytes arrived here from another node (the PullManager records each completed
  // pull). Past kMaxTransfers waiting, the oldest goes (counted in transfers_dropped()).
  void Transferred(const protocol::TransferEvent& transfer);

  // Sends batches of the oldest entries while the sender takes them; returns entries sent.
  size_t Flush(const Sender& send);
  // A full batch is waiting (worth flushing before the next tick).
  bool batch_ready() const { return count_ >= options_.max_batch; }

  size_t size() const { return count_; }
  size_t transfers_waiting() const { return transfers_.size(); }
  uint64_t dropped() const { return dropped_; }
  uint64_t transfers_dropped() const { return transfers_dropped_; }
  uint64_t recorded() const { return recorded_; }  // stages recorded (several may share an entry)

 private:
  // One task attempt's stages while they wait here: no heap memory (names and resource maps are
  // interned by id, error texts kept aside).
  struct Entry {
    TaskID task_id;
    ObjectID actor_id;
    int64_t submitted_us = 0, scheduled_us = 0, running_us = 0, end_us = 0;
    uint64_t job_id = 0, worker_id = 0;
    uint64_t seq = 0;  // its sequence number (keys its error text)
    uint32_t attempt = 0, placed_on = 0, worker_pid = 0, ran_on = 0;
    uint32_t name = 0, resources = 0;  // interned (0: none)
    protocol::TaskEventKind kind = protocol::TaskEventKind::kSubmitted;
    uint8_t task_kind = 0, error_kind = 0;
    bool has_error = false;
  };
  // The task's entry for its current attempt, reused while it waits here, else a new one.
  Entry& EntryFor(Task& task, protocol::TaskEventKind kind);
  Entry& At(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
  const Entry& At(size_t i) const { return ring_[(head_ + i) % ring_.size()]; }
  void PopFront();
  uint32_t NameOf(const protocol::TaskSpec& spec);
  uint32_t Intern(const protocol::ResourceMap& resources);

  Options options_;
  uint32_t node_ = 0;
  std::vector<Entry> ring_;  // circular, grows up to the capacity; the oldest at head_
  size_t head_ = 0, count_ = 0;
  uint64_t first_seq_ = 1;  // sequence number of the oldest entry
  std::unordered_map<uint64_t, std::string> errors_;  // by entry seq
  InternTable<std::string, std::unordered_map<std::string, uint32_t>> names_{kMaxInterned};
  std::string name_scratch_;
  InternTable<protocol::ResourceMap> resources_{kMaxInterned};  // most tasks ask for the same
  std::deque<protocol::TransferEvent> transfers_;
  mutable protocol::TaskEvent scratch_;  // what Encode writes each entry through
  uint64_t dropped_ = 0, transfers_dropped_ = 0;
  uint64_t recorded_ = 0;
};

// The attempt a task's events are recorded under: 0 first, +1 per retry (its owner counts;
// a node running a forwarded task adds its own retries to the owner's count in the spec).
uint32_t TaskAttempt(const protocol::TaskSpec& spec, int retries_left, bool remote);

}  // namespace quanta
