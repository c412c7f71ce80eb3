// Ready tasks of one node, grouped by resource demand ("scheduling class").
//
// Tasks within a class run by priority (higher first; beyond Ray, TaskSpec::priority) and in
// submission order within a priority; classes are served round-robin so a class whose demand
// cannot be met right now (or ever, on this node) never blocks another. The queue also holds
// the node's available resources: Pop acquires a task's demand, Release returns it. Which GPU
// devices a task gets is decided here too (AssignGpus): a class with a GPU demand is runnable
// only if specific devices can hold it, not just the aggregate amount.
//
// Thread-safety: loop thread only.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "scheduler/gpu_instances.h"
#include "scheduler/resource_set.h"

namespace quanta {

class TaskQueue {
 public:
  explicit TaskQueue(ResourceSet total);

  // Queues `task` after every task of its class with a priority at least as high.
  void Push(const TaskID& task, const ResourceSet& demand, int32_t priority = 0);
  // Puts a task back at the head of its priority in its class (a task a worker gave back keeps
  // its turn).
  void PushFront(const TaskID& task, const ResourceSet& demand, int32_t priority = 0);
  bool Remove(const TaskID& task);
  // True if some queued task fits the available resources now.
  bool HasRunnable() const;
  // Number of queued tasks that could start now, counting each class's demand once per task
  // until resources run out (an estimate of how many workers would be useful).
  size_t CountRunnable(size_t limit) const;
  // Removes the next task that fits and acquires its demand.
  std::optional<std::pair<TaskID, ResourceSet>> PopRunnable() {
    return PopRunnable([](const TaskID&) { return true; });
  }
  // The same, among the classes whose head task `accept` allows (a class whose head it refuses
  // is passed over, keeping its order): how the node runs a task only on a worker of the
  // task's runtime environment. `accept` may record what it refused.
  template <typename Accept>
  std::optional<std::pair<TaskID, ResourceSet>> PopRunnable(Accept accept);
  // Removes up to `max` tasks from the head of `demand`'s class, in order, while `accept` says
  // yes, without acquiring resources: they will run one after another on resources a worker
  // already holds (tasks queued at a busy worker).
  template <typename Accept>
  std::vector<TaskID> TakeFollowers(const ResourceSet& demand, size_t max, Accept accept);
  // The demands that have queued tasks.
  std::vector<ResourceSet> Classes() const {
    std::vector<ResourceSet> out;
    for (const auto& [demand, dq] : classes_) out.push_back(demand);
    return out;
  }
  // Removes up to `max` tasks from the tail of `demand`'s class (the newest) that `accept`
  // allows, without acquiring resources (they are to run elsewhere).
  template <typename Accept>
  std::vector<TaskID> TakeNewest(const ResourceSet& demand, size_t max, Accept accept);
  // Removes every task of `demand`'s class, in order, without acquiring resources.
  std::vector<TaskID> TakeClass(const ResourceSet& demand) {
    return TakeFollowers(demand, index_.size(), [](const TaskID&) { return true; });
  }
  size_t QueuedInClass(const ResourceSet& demand) const {
    auto it = classes_.find(demand);
    return it == classes_.end() ? 0 : it->second.size();
  }

  void Acquire(const ResourceSet& r) { available_.Subtract(r); }
  // Gives resources back; names no longer in the total (a removed placement group's) vanish.
  void Release(const ResourceSet& r);
  // Resources joining or leaving the node (placement-group bundles): total and available.
  void AddTotal(const ResourceSet& r);
  void RemoveTotal(const ResourceSet& r);

  // Demands (with their shortfall text) that exceed the node's total resources.
  std::vector<std::pair<ResourceSet, std::string>> InfeasibleClasses() const;
  bool IsFeasible(const ResourceSet& demand) const { return total_.Contains(demand); }

  // The GPU amount of a demand: "GPU", or the GPUs of a placement-group bundle ("GPU_group_..."),
  // which come from the same devices (the bundle's reservation took them from "GPU").
  static int64_t GpuDemand(const ResourceSet& demand);
  static bool IsGpuName(const std::string& name) { return name == "GPU" || name.rfind("GPU_group_", 0) == 0; }
  // The node's GPU devices (ids in order); without a call, "GPU" total units get ids 0..n-1.
  void SetGpuIds(std::vector<std::string> ids) { gpus_ = GpuInstances(std::move(ids)); }
  // Takes specific devices for a GPU amount just acquired (after PopRunnable, which checked
  // they fit; a demand that bypassed the check gets what is free, possibly nothing).
  GpuAssignment AssignGpus(int64_t amount) { return gpus_.Assign(amount).value_or(GpuAssignment{}); }
  void ReleaseGpus(const GpuAssignment& a) { gpus_.Release(a); }
  const GpuInstances& gpus() const { return gpus_; }

  const ResourceSet& total() const { return total_; }
  const ResourceSet& available() const { return available_; }
  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    TaskID id;
    int32_t priority;
  };
  using Class = std::deque<Entry>;  // highest priority first, FIFO within a priority
  bool Fits(const ResourceSet& demand) const {
    if (!available_.Contains(demand)) return false;
    if (gpus_.size() == 0) return true;  // a node without GPUs: nothing more to check
    int64_t gpu = GpuDemand(demand);
    return gpu == 0 || gpus_.CanAssign(gpu);
  }

  ResourceSet total_;
  ResourceSet available_;
  GpuInstances gpus_;
  std::map<ResourceSet, Class> classes_;
  std::unordered_map<TaskID, ResourceSet, ObjectIDHash> index_;  // queued task -> demand
  mutable std::map<ResourceSet, Class>::iterator cursor_;
};

template <typename Accept>
std::optional<std::pair<TaskID, ResourceSet>> TaskQueue::PopRunnable(Accept accept) {
  if (classes_.empty()) return std::nullopt;
  // Round-robin: start after the class served last.
  auto start = cursor_ == classes_.end() ? classes_.begin() : std::next(cursor_);
  if (start == classes_.end()) start = classes_.begin();
  auto it = start;
  do {
    if (Fits(it->first) && accept(it->second.front().id)) {
      ResourceSet demand = it->first;
      TaskID task = it->second.front().id;
      it->second.pop_front();
      index_.erase(task);
      if (it->second.empty()) {
        auto next = classes_.erase(it);
        cursor_ = next == classes_.begin() ? classes_.end() : std::prev(next);
      } else {
        cursor_ = it;
      }
      available_.Subtract(demand);
      return std::make_pair(task, demand);
    }
    if (++it == classes_.end()) it = classes_.begin();
  } while (it != start);
  return std::nullopt;
}

template <typename Accept>
std::vector<TaskID> TaskQueue::TakeFollowers(const ResourceSet& demand, size_t max, Accept accept) {
  std::vector<TaskID> out;
  auto cls = classes_.find(demand);
  if (cls == classes_.end()) return out;
  auto& dq = cls->second;
  while (out.size() < max && !dq.empty() && accept(dq.front().id)) {
    out.push_back(dq.front().id);
    index_.erase(dq.front().id);
    dq.pop_front();
  }
  if (dq.empty()) {
    if (cursor_ == cls) cursor_ = classes_.end();
    classes_.erase(cls);
  }
  return out;
}

template <typename Accept>
std::vector<TaskID> TaskQueue::TakeNewest(const ResourceSet& demand, size_t max, Accept accept) {
  std::vector<TaskID> out;
  auto cls = classes_.find(demand);
  if (cls == classes_.end()) return out;
  auto& dq = cls->second;
  for (auto it = dq.end(); it != dq.begin() && out.size() < max;) {
    --it;
    if (!accept(it->id)) continue;
    out.push_back(it->id);
    index_.erase(it->id);
    it = dq.erase(it);
  }
  if (dq.empty()) {
    if (cursor_ == cls) cursor_ = classes_.end();
    classes_.erase(cls);
  }
  return out;
}

}  // namespace quanta
