#include "scheduler/dependency_tracker.h"

namespace quanta {

void DependencyTracker::Wait(const TaskID& task, const std::vector<ObjectID>& missing) {
  missing_count_[task] += missing.size();
  for (const auto& id : missing) waiters_[id].push_back(task);
}

void DependencyTracker::OnAvailable(const ObjectID& object, std::vector<TaskID>* ready) {
  auto it = waiters_.find(object);
  if (it == waiters_.end()) return;
  std::vector<TaskID> tasks = std::move(it->second);
  waiters_.erase(it);
  for (const auto& task : tasks) {
    auto count = missing_count_.find(task);
    if (count == missing_count_.end()) continue;  // forgotten
    if (--count->second == 0) {
      missing_count_.erase(count);
      ready->push_back(task);
    }
  }
}

bool DependencyTracker::Forget(const TaskID& task) {
  // Stale entries in waiters_ are skipped in OnAvailable.
  return missing_count_.erase(task) > 0;
}

}  // namespace quanta
