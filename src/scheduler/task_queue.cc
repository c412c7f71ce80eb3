#include "scheduler/task_queue.h"

#include <algorithm>

namespace quanta {

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
}

void TaskQueue::Push(const TaskID& task, const ResourceSet& demand) {
  classes_[demand].push_back(task);
  index_[task] = demand;
}

void TaskQueue::PushFront(const TaskID& task, const ResourceSet& demand) {
  classes_[demand].push_front(task);
  index_[task] = demand;
}

bool TaskQueue::Remove(const TaskID& task) {
  auto it = index_.find(task);
  if (it == index_.end()) return false;
  auto cls = classes_.find(it->second);
  auto& dq = cls->second;
  for (auto q = dq.begin(); q != dq.end(); ++q) {
    if (*q == task) {
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
    if (!tasks.empty() && available_.Contains(demand)) return true;
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
