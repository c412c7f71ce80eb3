#include "node/lineage.h"

namespace quanta {

namespace {
constexpr size_t kEvictedRemembered = 100000;
}

size_t Lineage::SizeOf(const protocol::TaskSpec& spec) {
  return sizeof(protocol::TaskSpec) + spec.args_blob.size() + spec.name.size() + spec.function_id.size() +
         (spec.arg_refs.size() + spec.nested_refs.size()) * sizeof(ObjectID) + spec.resources.size() * 32;
}

void Lineage::Record(const protocol::TaskSpec& spec, int retries_left, uint32_t live_returns) {
  if (live_returns == 0) return;
  auto [it, added] = entries_.try_emplace(spec.task_id);
  Entry& e = it->second;
  if (!added) bytes_ -= e.bytes;  // rebuilt: the entry is refreshed
  e.spec = spec;
  e.spec.nested_refs.clear();  // pinned while the task ran, not by the lineage
  e.retries_left = retries_left;
  e.live_returns = live_returns;
  e.bytes = SizeOf(e.spec);
  bytes_ += e.bytes;
  if (added) {
    order_.push_back(spec.task_id);
    for (const auto& arg : e.spec.arg_refs) {
      if (arg.Index() == 0 || arg.Index() == ObjectID::kPutIndex) continue;
      if (auto a = entries_.find(arg.TaskId()); a != entries_.end() && a->first != spec.task_id) ++a->second.dependents;
    }
  }
  Evict();
}

Lineage::Entry* Lineage::Find(const TaskID& task) {
  auto it = entries_.find(task);
  return it == entries_.end() ? nullptr : &it->second;
}

void Lineage::OnFreed(const std::vector<ObjectID>& freed) {
  for (const auto& id : freed) {
    if (id.Index() == 0 || id.Index() == ObjectID::kPutIndex) continue;
    auto it = entries_.find(id.TaskId());
    if (it == entries_.end()) continue;
    if (it->second.live_returns > 0 && --it->second.live_returns > 0) continue;
    if (it->second.dependents > 0) continue;  // a kept task may need its returns made again
    Erase(it->first, false);
  }
  // Drop erased ids from the front so `order_` stays proportional to what is kept.
  while (!order_.empty() && !entries_.count(order_.front())) order_.pop_front();
}

void Lineage::Evict() {
  while (bytes_ > budget_ && !order_.empty()) {
    TaskID oldest = order_.front();
    order_.pop_front();
    if (entries_.count(oldest)) Erase(oldest, true);
  }
}

void Lineage::Erase(const TaskID& task, bool evicted) {
  std::vector<TaskID> todo{task};
  while (!todo.empty()) {
    TaskID t = todo.back();
    todo.pop_back();
    auto it = entries_.find(t);
    if (it == entries_.end()) continue;
    std::vector<ObjectID> args = std::move(it->second.spec.arg_refs);
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    if (evicted && t == task) {
      evicted_.emplace(t, true);
      evicted_order_.push_back(t);
      if (evicted_order_.size() > kEvictedRemembered) {
        evicted_.erase(evicted_order_.front());
        evicted_order_.pop_front();
      }
    }
    for (const auto& arg : args) {
      if (arg.Index() == 0 || arg.Index() == ObjectID::kPutIndex) continue;
      auto a = entries_.find(arg.TaskId());
      if (a == entries_.end() || a->second.dependents == 0) continue;
      // An argument's entry whose returns are all freed goes with its last dependent.
      if (--a->second.dependents == 0 && a->second.live_returns == 0) todo.push_back(a->first);
    }
  }
}

}  // namespace quanta
