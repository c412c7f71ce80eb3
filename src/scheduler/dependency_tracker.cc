#include "scheduler/dependency_tracker.h"

namespace quanta {

void DependencyTracker::Wait(const TaskID& task, const std::vector<ObjectID>& missing) {
  Waiting& w = missing_count_[task];
  if (w.generation == 0) w.generation = next_generation_++;
  w.missing += missing.size();
  for (const auto& id : missing) waiters_[id].emplace_back(task, w.generation);
}

void DependencyTracker::OnAvailable(const ObjectID& object, std::vector<TaskID>* ready) {
  auto it = waiters_.find(object);
  if (it == waiters_.end()) return;
  auto tasks = std::move(it->second);
  waiters_.erase(it);
  for (const auto& [task, generation] : tasks) {
    auto w = missing_count_.find(task);
    if (w == missing_count_.end() || w->second.generation != generation) continue;  // forgotten
    if (--w->second.missing == 0) {
      missing_count_.erase(w);
      ready->push_back(task);
    }
  }
}

bool DependencyTracker::Forget(const TaskID& task) {
  // Stale entries left in waiters_ carry an old generation and are skipped in OnAvailable.
  return missing_count_.erase(task) > 0;
}

}  // namespace quanta
