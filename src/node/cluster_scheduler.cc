#include "node/cluster_scheduler.h"

#include <algorithm>

namespace quanta {

using protocol::SchedulingStrategy;

namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

bool ClusterScheduler::LabelMatches(const protocol::Labels& labels, const std::string& key, const std::string& expr) {
  const std::string* value = nullptr;
  for (const auto& [k, v] : labels) {
    if (k == key) value = &v;
  }
  if (expr == "exists") return value != nullptr;
  if (expr == "!exists") return value == nullptr;
  bool negate = expr.rfind("!in:", 0) == 0;
  if (!negate && expr.rfind("in:", 0) != 0) return false;
  std::vector<std::string> values = Split(expr.substr(negate ? 4 : 3));
  bool in = value != nullptr && std::find(values.begin(), values.end(), *value) != values.end();
  return negate ? !in : in;
}

bool ClusterScheduler::AllowedBy(const protocol::NodeInfo& n, const SchedulingStrategy& s) const {
  if (s.kind == SchedulingStrategy::Kind::kNodeAffinity && !s.soft) return n.node_id == s.node_id;
  if (s.kind == SchedulingStrategy::Kind::kNodeLabel) {
    for (const auto& [key, expr] : s.hard) {
      if (!LabelMatches(n.labels, key, expr)) return false;
    }
  }
  return true;
}

bool ClusterScheduler::FreeNow(const protocol::NodeInfo& n, const ResourceSet& demand) const {
  if (n.node_index == view_->local_index()) {
    // Free now, and no task of the same shape already waiting for it here.
    return local_->available().Contains(demand) && local_->QueuedInClass(demand) == 0;
  }
  return FreeSlots(n.node_index, demand) > 0;
}

int64_t ClusterScheduler::FreeSlots(uint32_t node, const ResourceSet& demand) const {
  const protocol::NodeInfo* n = view_->Find(node);
  if (n == nullptr || !n->alive) return 0;
  ResourceSet free(n->available);
  auto c = credited_.find(node);
  if (c != credited_.end()) {
    free.Add(c->second);
    ResourceSet total(n->total);
    for (const auto& [name, amount] : total.amounts()) free.Set(name, std::min(free.Get(name), amount));
  }
  auto d = debited_.find(node);
  if (d != debited_.end()) free.Subtract(d->second);
  if (demand.IsEmpty()) return free.Contains(demand) ? 1 << 20 : 0;
  int64_t slots = 1 << 20;
  for (const auto& [name, amount] : demand.amounts()) {
    if (amount <= 0) continue;
    slots = std::min<int64_t>(slots, std::max<int64_t>(0, free.Get(name)) / amount);
  }
  return slots;
}

void ClusterScheduler::NoteReturned(uint32_t node, const ResourceSet& demand) {
  auto d = debited_.find(node);
  if (d != debited_.end() && d->second.Contains(demand)) {
    d->second.Subtract(demand);
    return;
  }
  credited_[node].Add(demand);
}

std::vector<uint32_t> ClusterScheduler::NodesWithRoom(const ResourceSet& demand) const {
  std::vector<std::pair<int64_t, uint32_t>> room;
  view_->ForEachAlive([&](const protocol::NodeInfo& n) {
    if (n.node_index == view_->local_index() || (n.flags & protocol::NodeInfo::kDriverNode)) return;
    int64_t slots = FreeSlots(n.node_index, demand);
    if (slots > 0) room.emplace_back(slots, n.node_index);
  });
  std::sort(room.begin(), room.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<uint32_t> out;
  for (const auto& [slots, node] : room) out.push_back(node);
  return out;
}

ClusterScheduler::Placement ClusterScheduler::Choose(const Request& request) {
  const ResourceSet& demand = *request.demand;
  static const SchedulingStrategy kDefault;
  const SchedulingStrategy& s = request.strategy ? *request.strategy : kDefault;
  std::vector<const protocol::NodeInfo*> candidates;
  bool local_seen = false;
  view_->ForEachAlive([&](const protocol::NodeInfo& n) {
    bool local = n.node_index == view_->local_index();
    if (local) local_seen = true;
    if (n.flags & protocol::NodeInfo::kDriverNode) return;
    // This node's own totals are live (placement-group bundles change them), others' as reported.
    bool fits = local ? local_->IsFeasible(demand) : ResourceSet(n.total).Contains(demand);
    if (!fits || !AllowedBy(n, s)) return;
    candidates.push_back(&n);
  });
  // Before the node table arrives (a local cluster's first moments) this node is its own view.
  if (!local_seen && local_->IsFeasible(demand)) return {Placement::kLocal, 0, ""};
  if (candidates.empty()) {
    std::string why = "no node of the cluster has " + demand.ToString();
    if (s.kind == SchedulingStrategy::Kind::kNodeAffinity && !s.soft && view_->IsDeadNodeId(s.node_id)) {
      // As in Ray: a hard affinity to a dead node fails at once (node ids are never reused).
      return {Placement::kUnschedulable, 0,
              "node " + s.node_id + " (NodeAffinitySchedulingStrategy, soft=False) is dead"};
    }
    if (s.kind == SchedulingStrategy::Kind::kNodeAffinity && !s.soft) {
      why = "node " + s.node_id + " (NodeAffinitySchedulingStrategy, soft=False) is not an alive node with " +
            demand.ToString();
    } else if (s.kind == SchedulingStrategy::Kind::kNodeLabel && !s.hard.empty()) {
      why = "no alive node matches the task's label selector and has " + demand.ToString();
    }
    return {Placement::kInfeasible, 0, why};
  }
  auto pick = [&](const protocol::NodeInfo* n) -> Placement {
    return n->node_index == view_->local_index() ? Placement{Placement::kLocal, 0, ""}
                                                  : Placement{Placement::kRemote, n->node_index, ""};
  };
  if (s.kind == SchedulingStrategy::Kind::kNodeAffinity && s.soft) {
    for (const auto* n : candidates) {
      if (n->node_id == s.node_id) return pick(n);
    }
  }
  if (s.kind == SchedulingStrategy::Kind::kNodeLabel && !s.soft_labels.empty()) {
    std::vector<const protocol::NodeInfo*> preferred;
    for (const auto* n : candidates) {
      bool all = true;
      for (const auto& [key, expr] : s.soft_labels) all = all && LabelMatches(n->labels, key, expr);
      if (all) preferred.push_back(n);
    }
    for (const auto* n : preferred) {
      if (FreeNow(*n, demand)) return pick(n);
    }
  }
  if (s.kind == SchedulingStrategy::Kind::kSpread) {
    uint32_t start = rotation_++;
    // A demand of nothing (num_cpus=0 actors) fits every node: the rotation alone decides. The
    // local "free now" test would skip this node while an earlier one still waits here for its
    // worker to start, and give its turns to the next node in the rotation.
    if (demand.IsEmpty()) return pick(candidates[start % candidates.size()]);
    for (size_t i = 0; i < candidates.size(); ++i) {
      const auto* n = candidates[(start + i) % candidates.size()];
      if (FreeNow(*n, demand)) return pick(n);
    }
    return pick(candidates[start % candidates.size()]);
  }
  return Default(demand, candidates, request);
}

ClusterScheduler::Placement ClusterScheduler::Default(const ResourceSet& demand,
                                                      const std::vector<const protocol::NodeInfo*>& candidates,
                                                      const Request& request) {
  auto pick = [&](const protocol::NodeInfo* n) -> Placement {
    return n->node_index == view_->local_index() ? Placement{Placement::kLocal, 0, ""}
                                                  : Placement{Placement::kRemote, n->node_index, ""};
  };
  // Locality: large arguments pull the task to the node that holds most of their bytes.
  uint64_t best_bytes = 0;
  const protocol::NodeInfo* data_node = nullptr;
  for (const auto& [node, bytes] : request.arg_bytes) {
    if (bytes < kLocalityBytes || bytes <= best_bytes) continue;
    for (const auto* n : candidates) {
      if (n->node_index == node && FreeNow(*n, demand)) {
        data_node = n;
        best_bytes = bytes;
      }
    }
  }
  if (data_node != nullptr) return pick(data_node);
  const protocol::NodeInfo* local = nullptr;
  for (const auto* n : candidates) {
    if (n->node_index == view_->local_index()) local = n;
  }
  if (local != nullptr && FreeNow(*local, demand)) return pick(local);
  uint32_t start = rotation_++;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto* n = candidates[(start + i) % candidates.size()];
    if (n != local && FreeNow(*n, demand)) return pick(n);
  }
  if (local != nullptr) return pick(local);  // waits here; may spill once another node frees up
  return pick(candidates[start % candidates.size()]);
}

std::string ClusterScheduler::LargestNode() const {
  const protocol::NodeInfo* largest = nullptr;
  int64_t most = -1;
  view_->ForEachAlive([&](const protocol::NodeInfo& n) {
    if (n.flags & protocol::NodeInfo::kDriverNode) return;
    int64_t cpus = ResourceSet(n.total).Get("CPU");
    if (cpus > most) {
      most = cpus;
      largest = &n;
    }
  });
  if (largest == nullptr) return "no alive node";
  return "the largest node is node " + std::to_string(largest->node_index) + " with " +
         ResourceSet(largest->total).ToString();
}

}  // namespace quanta
