// The head's table of tasks, built from the events every node ships (node/task_events.h).
//
// Built to cost little while nobody looks: ingesting an event is a decode and a copy into a
// compact, heap-free entry (names and resource maps are interned by id); rows are merged by
// task id only when someone asks (Query, Find, Summarize).
//
// Two stores, bounded together by `capacity` entries:
//  * the ring: closed entries, oldest first. An entry is closed when its task ended (finished
//    or failed) or when it is an owner's record of a task it handed to another node (the owner
//    records nothing more of that attempt). Most tasks arrive closed, in one event holding all
//    their stages (the node merges a task's stages while they wait to be shipped).
//  * the open entries, by task id: stages of tasks that are still pending or running, which
//    later events of the same task merge into; once closed they move to the ring.
// Past `capacity` the oldest closed entry goes first, then the oldest open one; evictions and
// the nodes' own reported drops are counted (Stats).
//
// Merging (at query time, and into open entries): events may arrive in any order and from
// several nodes (the owner records submission and placement, the node running it the rest).
// Within an attempt a later stage wins; a newer attempt starts the row over; events of older
// attempts are ignored. A task may therefore hold more than one entry (an owner's and the
// running node's), merged into one row by a query.
//
// Object transfers the nodes report (TransferEvent) are kept apart, the newest kMaxTransfers.
//
// Ownership: owned by the ControlServer. Thread-safety: loop thread only.
#pragma once

#include "common/intern_table.h"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "protocol/task_event_messages.h"

namespace quanta {

class TaskEventTable {
 public:
  static constexpr uint32_t kMaxInterned = 100000;  // distinct names (and resource maps) kept
  static constexpr size_t kMaxTransfers = 100000;   // object transfers kept (the oldest go first)

  explicit TaskEventTable(size_t capacity = 100000) : capacity_(capacity == 0 ? 1 : capacity) {}

  void Apply(const protocol::TaskEventBatch& batch);
  void Apply(const protocol::TaskEvent& event);
  // A TaskEvents frame body from `node`, applied event by event as it is decoded (no batch is
  // built); an error if the body is malformed (the events before it stay applied).
  Status ApplyEncoded(std::string_view body, uint32_t node);

  // Rows matching the query, oldest first seen first, at most query.limit (0: all); *matched
  // gets how many matched in all.
  std::vector<protocol::TaskRecord> Query(const protocol::TaskQuery& query, uint64_t* matched) const;
  std::vector<protocol::TaskSummaryRow> Summarize() const;
  protocol::TaskTableStats Stats() const;
  std::optional<protocol::TaskRecord> Find(const TaskID& id) const;
  // Completed object transfers the nodes reported, oldest first.
  const std::deque<protocol::TransferEvent>& transfers() const { return transfers_; }
  // Entries held (a task whose stages came from two nodes may hold two).
  size_t size() const { return ring_count_ + open_.size(); }

 private:
  // One node's stages of one attempt, or several merged: no heap memory.
  struct Entry {
    TaskID task_id;
    ObjectID actor_id;
    uint64_t seq = 0;        // when first stored (orders rows; keys its error)
    uint64_t error_key = 0;  // the errors_ key of its error text (0: none)
    uint64_t job_id = 0, worker_id = 0;
    int64_t submitted_us = 0, scheduled_us = 0, running_us = 0, end_us = 0;
    uint32_t attempt = 0;
    uint32_t owner_node = 0, placed_on = 0, ran_on = 0, ended_on = 0;
    uint32_t worker_pid = 0;
    uint32_t name = 0, resources = 0;  // interned (0: none)
    protocol::TaskEventKind state = protocol::TaskEventKind::kSubmitted;
    uint8_t task_kind = 0, error_kind = 0;
    uint32_t node() const { return ran_on ? ran_on : placed_on ? placed_on : ended_on; }
    bool closed() const;
  };
  Entry FromEvent(const protocol::TaskEvent& e);
  // Merges `later` (an entry of the same task stored after `row`) into `row`.
  static void Merge(Entry& row, const Entry& later);
  void DropError(uint64_t key);
  void PushRing(const Entry& e);
  void Bound();
  const Entry& RingAt(size_t i) const { return ring_[(ring_head_ + i) % ring_.size()]; }
  // Every task's entries merged into one row each, oldest first.
  std::vector<Entry> MergeAll() const;
  bool Matches(const Entry& r, const protocol::TaskQuery& q) const;
  protocol::TaskRecord ToRecord(const Entry& e) const;
  uint32_t InternName(const std::string& name);
  uint32_t InternResources(const protocol::ResourceMap& resources);

  size_t capacity_;
  std::vector<Entry> ring_;  // circular, grows up to capacity_
  size_t ring_head_ = 0, ring_count_ = 0;
  std::unordered_map<TaskID, Entry, ObjectIDHash> open_;
  std::deque<std::pair<uint64_t, TaskID>> open_order_;  // (seq, id) by age; stale ones skipped
  std::unordered_map<uint64_t, std::string> errors_;    // failed entries' texts, by error_key
  InternTable<std::string, std::unordered_map<std::string, uint32_t>> names_{kMaxInterned};
  InternTable<protocol::ResourceMap> resources_{kMaxInterned};  // most tasks ask for the same
  protocol::TaskEvent scratch_;  // decoding target reused across events (keeps its strings)
  uint64_t next_seq_ = 1;
  uint64_t dropped_ = 0;
  std::unordered_map<uint32_t, uint64_t> node_dropped_;  // each node's latest report
  std::deque<protocol::TransferEvent> transfers_;
  uint64_t transfers_dropped_ = 0;  // evicted here
  std::unordered_map<uint32_t, uint64_t> node_transfers_dropped_;
  void AddTransfer(const protocol::TransferEvent& t);
};

}  // namespace quanta
