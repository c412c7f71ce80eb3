#include "node/cluster_scheduler.h"

namespace quanta {

ClusterScheduler::Placement ClusterScheduler::Choose(const ResourceSet& demand) {
  if (local_->IsFeasible(demand)) return {Placement::kLocal, 0};
  // Candidates: alive nodes (not this one, not driver-only nodes) whose totals fit.
  uint32_t best = 0, fallback = 0;
  size_t seen = 0;
  uint32_t start = rotation_++;
  std::vector<const protocol::NodeInfo*> fits;
  view_->ForEachAlive([&](const protocol::NodeInfo& n) {
    if (n.node_index == view_->local_index() || (n.flags & protocol::NodeInfo::kDriverNode)) return;
    if (!ResourceSet(n.total).Contains(demand)) return;
    fits.push_back(&n);
  });
  for (size_t i = 0; i < fits.size(); ++i) {
    const protocol::NodeInfo* n = fits[(start + i) % fits.size()];
    ++seen;
    ResourceSet free(n->available);
    auto d = debited_.find(n->node_index);
    if (d != debited_.end()) free.Subtract(d->second);
    if (free.Contains(demand)) {
      best = n->node_index;
      break;
    }
    if (fallback == 0) fallback = n->node_index;
  }
  if (best != 0) return {Placement::kRemote, best};
  if (fallback != 0) return {Placement::kRemote, fallback};  // it queues there until it fits
  return {Placement::kInfeasible, 0};
}

void ClusterScheduler::NoteSent(uint32_t node, const ResourceSet& demand) { debited_[node].Add(demand); }

std::string ClusterScheduler::LargestNode() const {
  const protocol::NodeInfo* largest = nullptr;
  int64_t most = -1;
  view_->ForEachAlive([&](const protocol::NodeInfo& n) {
    int64_t cpus = ResourceSet(n.total).Get("CPU");
    if (cpus > most) {
      most = cpus;
      largest = &n;
    }
  });
  if (largest == nullptr) return "none";
  return "node " + std::to_string(largest->node_index) + " with " + ResourceSet(largest->total).ToString();
}

}  // namespace quanta
