// The head's table of tasks, built from the events every node ships (node/task_events.h):
// one row per task (its latest attempt), merged from events that may arrive in any order and
// from several nodes (the owner records submission and placement, the node running it the
// rest). Within an attempt a later stage wins; an event of a newer attempt starts the row over;
// events of older attempts are ignored.
//
// Bounded by count: past `capacity` rows the oldest finished (or failed) row goes first, then
// the oldest of any; evictions and the nodes' own reported drops are counted (Stats).
//
// Ownership: owned by the ControlServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/task_event_messages.h"

namespace quanta {

class TaskEventTable {
 public:
  explicit TaskEventTable(size_t capacity = 100000) : capacity_(capacity == 0 ? 1 : capacity) {}

  void Apply(const protocol::TaskEventBatch& batch);
  void Apply(const protocol::TaskEvent& event);
  // A TaskEvents frame body from `node`, applied event by event as it is decoded (no batch is
  // built); an error if the body is malformed (the events before it stay applied).
  Status ApplyEncoded(std::string_view body, uint32_t node);

  // Rows matching the query, oldest submitted first, at most query.limit (0: all); *matched
  // gets how many matched in all.
  std::vector<const protocol::TaskRecord*> Query(const protocol::TaskQuery& query, uint64_t* matched) const;
  std::vector<protocol::TaskSummaryRow> Summarize() const;
  protocol::TaskTableStats Stats() const;
  const protocol::TaskRecord* Find(const TaskID& id) const;
  size_t size() const { return rows_.size(); }

 private:
  struct Row {
    protocol::TaskRecord record;
    uint64_t order = 0;     // its entry in order_
    uint64_t finished = 0;  // its entry in finished_ (0: not terminal)
  };
  // Queues of (sequence, task) with lazy deletion: an entry whose row is gone or carries
  // another sequence is stale and skipped (and dropped when it reaches the front, or when the
  // queue is compacted at twice the capacity).
  using Queue = std::deque<std::pair<uint64_t, TaskID>>;
  bool Live(const Queue::value_type& entry, bool finished) const;
  void NoteDropped(uint32_t node, uint64_t dropped);
  void SetTerminal(Row& row, bool terminal);
  void Evict();
  void Compact(Queue& q, bool finished);

  size_t capacity_;
  std::unordered_map<TaskID, Row, ObjectIDHash> rows_;
  Queue order_;     // rows by first sight
  Queue finished_;  // terminal rows by when they ended
  protocol::TaskEvent scratch_;  // decoding target reused across events (keeps its strings)
  uint64_t next_order_ = 1;
  uint64_t next_finished_ = 1;
  uint64_t dropped_ = 0;
  std::unordered_map<uint32_t, uint64_t> node_dropped_;  // each node's latest report
};

}  // namespace quanta
