// Task events: what each node records about the tasks it handles (submitted, placed, running,
// finished or failed), shipped to the control service in batches, and the head's merged rows
// that the state API lists (quanta.util.state.list_tasks, `quanta list tasks`, the timeline).
//
//   node -> control   TaskEvents (TaskEventBatch), every flush interval (node/task_events.h)
//   client -> node -> control   ControlRequest kGetTransfers -> items: TransferEvent
//   client -> node -> control   ControlRequest kGetTasks (arg: TaskQuery) -> items: TaskRecord
//                               ControlRequest kSummarizeTasks -> items: TaskSummaryRow
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace quanta::protocol {

// In the order of a task's life: a later kind of the same attempt wins over an earlier one.
enum class TaskEventKind : uint8_t {
  kSubmitted = 1,  // the owner's node accepted it (it may wait for arguments or a node)
  kScheduled = 2,  // placed on a node (`node`), waiting there for a worker
  kRunning = 3,    // handed to a worker (`worker_pid`, `worker_id`) on `node`
  kFinished = 4,
  kFailed = 5,     // `error_kind` (an ObjectKind) and `error` say why
};
inline constexpr uint8_t kTaskEventKindMax = 5;

// What one node saw of one attempt of a task: the stages it recorded (a time each, 0: not
// seen) and what they told. `kind` is the latest of them.
struct TaskEvent {
  TaskID task_id;
  TaskEventKind kind = TaskEventKind::kSubmitted;
  uint8_t task_kind = 0;   // TaskKind
  uint32_t attempt = 0;    // 0 for the first execution, +1 for each retry
  uint32_t node = 0;       // the node that recorded it
  uint32_t placed_on = 0;  // scheduled: the node chosen
  // Wall clock of the recording node, microseconds since the epoch.
  int64_t submitted_us = 0, scheduled_us = 0, running_us = 0, end_us = 0;
  uint64_t job_id = 0;
  ObjectID actor_id;       // actor tasks
  std::string name;        // submitted, running: the function, or Class.method
  ResourceMap resources;   // submitted
  uint32_t worker_pid = 0;  // running
  uint64_t worker_id = 0;   // running: the worker's client id
  uint32_t ran_on = 0;      // running: the node it ran on, when not `node` (an actor lane's call)
  uint8_t error_kind = 0;   // failed
  std::string error;        // failed: the error's text (a traceback for exceptions), clipped
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// One completed pull of an object's bytes from one node's store into another's, recorded by
// the receiving node (the timeline's "transfers" rows).
struct TransferEvent {
  ObjectID object_id;
  uint64_t bytes = 0;
  uint32_t from_node = 0, to_node = 0;
  int64_t start_us = 0, end_us = 0;  // the receiver's wall clock: asked, and sealed
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct TaskEventBatch {
  uint32_t node = 0;
  uint64_t dropped = 0;  // events this node dropped so far (its buffer was full)
  std::vector<TaskEvent> events;
  uint64_t transfers_dropped = 0;  // transfers this node dropped so far
  std::vector<TransferEvent> transfers;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// Which rows to list: every field that is set must match. Rows come oldest first.
struct TaskQuery {
  ObjectID task_id;          // nil: any
  uint8_t state = 0;         // a TaskEventKind, 0: any
  bool has_job = false;
  uint64_t job_id = 0;
  uint32_t node = 0;         // 0: any
  std::string name;          // empty: any
  ObjectID actor_id;         // nil: any
  uint32_t limit = 0;        // rows returned at most (0: all); the reply's count has every match
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// The head's merged view of one task (its latest attempt).
struct TaskRecord {
  TaskID task_id;
  uint32_t attempt = 0;
  uint8_t task_kind = 0;
  TaskEventKind state = TaskEventKind::kSubmitted;
  std::string name;
  uint64_t job_id = 0;
  ObjectID actor_id;
  uint32_t owner_node = 0;  // where it was submitted
  uint32_t node = 0;        // where it was placed / ran (0: not yet)
  uint32_t worker_pid = 0;
  uint64_t worker_id = 0;
  ResourceMap resources;
  int64_t submitted_us = 0, scheduled_us = 0, running_us = 0, end_us = 0;  // 0: not seen
  uint8_t error_kind = 0;
  std::string error;
  bool terminal() const { return state == TaskEventKind::kFinished || state == TaskEventKind::kFailed; }
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// What the head's table holds and lost (the kGetTasks reply's blob).
struct TaskTableStats {
  uint64_t stored = 0;            // rows kept now
  uint64_t capacity = 0;
  uint64_t dropped_on_head = 0;   // rows evicted to stay within capacity
  uint64_t dropped_on_nodes = 0;  // events the nodes' buffers dropped (sum of their reports)
  uint64_t transfers_stored = 0, transfers_dropped = 0;  // object transfers kept, and lost (head and nodes)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// Tasks per function (or actor class.method) and kind, counted by state.
struct TaskSummaryRow {
  std::string name;
  uint8_t task_kind = 0;
  uint64_t counts[kTaskEventKindMax + 1] = {};  // by TaskEventKind
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

template <typename M>
std::string EncodeValue(const M& m) {
  std::string out;
  Writer w(&out);
  m.Encode(w);
  return out;
}

template <typename M>
Status DecodeValue(std::string_view data, M* m) {
  Reader r(data);
  QUANTA_RETURN_IF_ERROR(m->Decode(r));
  return r.ExpectEnd();
}

}  // namespace quanta::protocol
