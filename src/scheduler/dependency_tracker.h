// Tracks which tasks wait for which objects.
//
// A task is registered with the ids of its argument objects that are not yet available; when
// the last of them becomes available the tracker reports the task as ready. It holds only ids;
// the NodeServer owns the tasks and objects.
//
// Thread-safety: loop thread only.
#pragma once

#include <unordered_map>
#include <vector>

#include "common/ids.h"

namespace quanta {

class DependencyTracker {
 public:
  // Registers `task` as waiting for `missing` (must be non-empty; duplicates allowed).
  void Wait(const TaskID& task, const std::vector<ObjectID>& missing);
  // Marks `object` available; appends the tasks that now have all their arguments to `ready`.
  void OnAvailable(const ObjectID& object, std::vector<TaskID>* ready);
  // Forgets a waiting task (e.g. cancelled). Returns false if it was not waiting.
  bool Forget(const TaskID& task);
  bool IsWaiting(const TaskID& task) const { return missing_count_.count(task) > 0; }
  size_t num_waiting() const { return missing_count_.size(); }

 private:
  struct Waiting {
    size_t missing = 0;
    uint64_t generation = 0;  // distinguishes a re-registered task from its forgotten past
  };
  std::unordered_map<ObjectID, std::vector<std::pair<TaskID, uint64_t>>, ObjectIDHash> waiters_;
  std::unordered_map<TaskID, Waiting, ObjectIDHash> missing_count_;
  uint64_t next_generation_ = 1;
};

}  // namespace quanta
