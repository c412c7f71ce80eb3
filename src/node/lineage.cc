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
  if (added) order_.push_back(spec.task_id);
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
    bytes_ -= it->second.bytes;
    entries_.erase(it);
  }
  // Drop erased ids from the front so `order_` stays proportional to what is kept.
  while (!order_.empty() && !entries_.count(order_.front())) order_.pop_front();
}

void Lineage::Evict() {
  while (bytes_ > budget_ && !order_.empty()) {
    TaskID oldest = order_.front();
    order_.pop_front();
    auto it = entries_.find(oldest);
    if (it == entries_.end()) continue;
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    evicted_.emplace(oldest, true);
    evicted_order_.push_back(oldest);
    if (evicted_order_.size() > kEvictedRemembered) {
      evicted_.erase(evicted_order_.front());
      evicted_order_.pop_front();
    }
  }
}

}  // namespace quanta
