// The lineage this node keeps as an owner: the specs of finished tasks whose stored returns may
// still be read, so that a return lost with the node holding its only copy can be rebuilt by
// running its task again (docs/fault-tolerance.md, "Objects").
//
// An entry is kept from the task's completion until every return of it is freed and no kept
// entry names one of its returns as an argument (so that an argument freed since can be made
// again when a later object is rebuilt, as Ray does), within a byte budget (the specs' sizes):
// past it the oldest entries go first, and their objects can then no longer be rebuilt
// (ObjectReconstructionFailedLineageEvictedError). Each entry carries the retries its task had
// left; every rebuild spends one.
//
// Ownership: owned by the NodeServer, used by the TaskManager. Thread-safety: loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

class Lineage {
 public:
  explicit Lineage(size_t budget_bytes) : budget_(budget_bytes) {}

  // A task owned here finished; `live_returns` of its returns may be read later.
  void Record(const protocol::TaskSpec& spec, int retries_left, uint32_t live_returns);
  struct Entry {
    protocol::TaskSpec spec;
    int retries_left = 0;
    uint32_t live_returns = 0;
    uint32_t dependents = 0;  // kept entries with an argument among this task's returns
    size_t bytes = 0;
  };
  // The entry for a task, or null (never kept, evicted, or every return freed).
  Entry* Find(const TaskID& task);
  // Whether the task was kept once and evicted for the budget (as opposed to never kept).
  bool WasEvicted(const TaskID& task) const { return evicted_.count(task) > 0; }
  // Objects freed here: an entry goes with its last return.
  void OnFreed(const std::vector<ObjectID>& freed);

  size_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }

 private:
  static size_t SizeOf(const protocol::TaskSpec& spec);
  void Evict();
  // Erases an entry; the entries of its arguments lose a dependent (and go too once unused).
  void Erase(const TaskID& task, bool evicted);

  size_t budget_;
  size_t bytes_ = 0;
  std::unordered_map<TaskID, Entry, ObjectIDHash> entries_;
  std::deque<TaskID> order_;  // oldest first (may name erased entries)
  // Tasks evicted for the budget, remembered (bounded) to give the right error.
  std::unordered_map<TaskID, bool, ObjectIDHash> evicted_;
  std::deque<TaskID> evicted_order_;
};

}  // namespace quanta
