#include "scheduler/task_queue.h"

#include <algorithm>

namespace quanta {

int64_t TaskQueue::GpuDemand(const ResourceSet& demand) {
  int64_t gpu = demand.Get("GPU");
  // A task in a group names one of the group's GPU resources (by bundle, or any bundle).
  for (auto it = demand.amounts().lower_bound("GPU_group_"); it != demand.amounts().end(); ++it) {
    if (it->first.rfind("GPU_group_", 0) != 0) break;
    gpu += it->second;
  }
  return gpu;
}

void TaskQueue::Release(const ResourceSet& r) {
  for (const auto& [name, amount] : r.amounts()) {
    if (total_.Get(name) > 0) available_.Set(name, available_.Get(name) + amount);
  }
}

void TaskQueue::AddTotal(const ResourceSet& r) {
  total_.Add(r);
  available_.Add(r);
}

void TaskQueue::RemoveTotal(const ResourceSet& r) {
  for (const auto& [name, amount] : r.amounts()) {
    total_.Set(name, std::max<int64_t>(0, total_.Get(name) - amount));
    available_.Set(name, total_.Get(name) == 0 ? 0 : available_.Get(name) - amount);
  }
}

TaskQueue::TaskQueue(ResourceSet total) : total_(total), available_(std::move(total)) {
  cursor_ = classes_.end();
  std::vector<std::string> ids;
  for (int64_t i = 0; i < total_.Get("GPU") / protocol::kResourceUnit; ++i) ids.push_back(std::to_string(i));
  gpus_ = GpuInstances(std::move(ids));
}

void TaskQueue::Push(const TaskID& task, const ResourceSet& demand, int32_t priority) {
  Class& dq = classes_[demand];
  if (dq.empty() || dq.back().priority >= priority) {
    dq.push_back({task, priority});  // the common case (one priority): constant time
  } else {
    // After the last entry whose priority is at least ours (the class is sorted, highest first).
    auto at = std::partition_point(dq.begin(), dq.end(), [&](const Entry& e) { return e.priority >= priority; });
    dq.insert(at, {task, priority});
  }
  index_[task] = demand;
}

void TaskQueue::PushFront(const TaskID& task, const ResourceSet& demand, int32_t priority) {
  Class& dq = classes_[demand];
  if (dq.empty() || dq.front().priority <= priority) {
    dq.push_front({task, priority});
  } else {
    auto at = std::partition_point(dq.begin(), dq.end(), [&](const Entry& e) { return e.priority > priority; });
    dq.insert(at, {task, priority});
  }
  index_[task] = demand;
}

bool TaskQueue::Remove(const TaskID& task) {
  auto it = index_.find(task);
  if (it == index_.end()) return false;
  auto cls = classes_.find(it->second);
  auto& dq = cls->second;
  for (auto q = dq.begin(); q != dq.end(); ++q) {
    if (q->id == task) {
      dq.erase(q);
      break;
    }
  }
  if (dq.empty()) {
    if (cursor_ == cls) cursor_ = classes_.end();
    classes_.erase(cls);
  }
  index_.erase(it);
  return true;
}

bool TaskQueue::HasRunnable() const {
  for (const auto& [demand, tasks] : classes_) {
    if (!tasks.empty() && Fits(demand)) return true;
  }
  return false;
}

size_t TaskQueue::CountRunnable(size_t limit) const {
  ResourceSet left = available_;
  size_t count = 0;
  bool progress = true;
  std::map<ResourceSet, size_t> taken;
  while (count < limit && progress) {
    progress = false;
    for (const auto& [demand, tasks] : classes_) {
      if (taken[demand] < tasks.size() && left.Contains(demand)) {
        ++taken[demand];
        left.Subtract(demand);
        ++count;
        progress = true;
        // A class that demands nothing could take every task; count it once per round.
        if (count >= limit) break;
      }
    }
  }
  return count;
}

std::vector<std::pair<ResourceSet, std::string>> TaskQueue::InfeasibleClasses() const {
  std::vector<std::pair<ResourceSet, std::string>> out;
  for (const auto& [demand, tasks] : classes_) {
    if (!tasks.empty() && !total_.Contains(demand)) {
      out.emplace_back(demand, total_.DescribeShortfall(demand));
    }
  }
  return out;
}

}  // namespace quanta
