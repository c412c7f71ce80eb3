#include "control/placement_groups.h"

#include <algorithm>
#include <functional>
#include <numeric>

#include "common/logging.h"
#include "control/rows.h"
#include "scheduler/resource_set.h"

namespace quanta {

using protocol::PlacementGroupInfo;
using protocol::PlacementStrategy;
using State = PlacementGroupInfo::State;

namespace {
constexpr const char* kTable = "placement_groups";
}

Result<size_t> PlacementGroupManager::Restore() {
  if (store_ == nullptr) return size_t{0};
  auto rows = store_->Load(kTable);
  if (!rows.ok()) return rows.status();
  for (const auto& [key, value] : rows.value()) {
    Group g;
    Status st = DecodeRow(value, &g.info);
    if (!st.ok()) {
      return Status::InvalidArgument("a corrupt row in table placement_groups of " + store_->Describe() + ": " +
                                     st.message());
    }
    if (g.info.state == State::kPending || g.info.state == State::kRescheduling) {
      stale_.insert(g.info.spec.id);
      g.info.message = "pending: the head restarted while it was being placed";
    }
    groups_[g.info.spec.id] = std::move(g);
  }
  return groups_.size();
}

void PlacementGroupManager::Persist(const Group& g) {
  if (store_ != nullptr) store_->Write(kTable, g.info.spec.id.Binary(), EncodeRow(g.info));
}

Status PlacementGroupManager::Create(protocol::PlacementGroupSpec spec) {
  if (groups_.count(spec.id)) return Status::InvalidArgument("placement group " + spec.id.Hex() + " exists");
  if (!spec.name.empty()) {
    for (const auto& [id, g] : groups_) {
      if (g.info.state != State::kRemoved && g.info.spec.name == spec.name && g.info.spec.name_space == spec.name_space) {
        return Status::InvalidArgument("a placement group named '" + spec.name + "' already exists in namespace '" +
                                       spec.name_space + "'");
      }
    }
  }
  // Checked here too, not only in Python: a negative amount reserved on a node would add to
  // its resources instead of taking from them.
  if (spec.bundles.empty()) return Status::InvalidArgument("a placement group needs at least one bundle");
  for (const auto& b : spec.bundles) {
    bool positive = false;
    for (const auto& [name, amount] : b) {
      if (amount < 0) return Status::InvalidArgument("bundle resource " + name + " has a negative amount");
      positive = positive || amount > 0;
    }
    if (!positive) return Status::InvalidArgument("a bundle must ask for at least one resource");
  }
  Group& g = groups_[spec.id];
  g.info.spec = std::move(spec);
  g.info.state = State::kPending;
  Persist(g);
  TryPlace(g);
  return Status::Ok();
}

std::vector<uint32_t> PlacementGroupManager::Plan(const protocol::PlacementGroupSpec& spec,
                                                  const std::vector<std::pair<uint32_t, protocol::ResourceMap>>& free_in,
                                                  std::string* why) {
  const size_t n = spec.bundles.size();
  std::vector<std::pair<uint32_t, ResourceSet>> free;
  for (const auto& [node, res] : free_in) free.emplace_back(node, ResourceSet(res));
  std::vector<ResourceSet> bundles;
  for (const auto& b : spec.bundles) bundles.emplace_back(b);
  std::vector<uint32_t> plan(n, 0);
  // Most constrained bundles first (those fewest nodes have room for), then the biggest: a
  // bundle that only one node can hold must not find that node taken by one that fits anywhere.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  {
    std::vector<size_t> room(n, 0);
    for (size_t i = 0; i < n; ++i) {
      for (const auto& [node, f] : free) room[i] += f.Contains(bundles[i]);
    }
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (room[a] != room[b]) return room[a] < room[b];
      return bundles[a].Get("CPU") > bundles[b].Get("CPU");
    });
  }
  auto fits_one_node = [&](std::vector<uint32_t>* out) {
    ResourceSet all;
    for (const auto& b : bundles) all.Add(b);
    for (const auto& [node, f] : free) {
      if (f.Contains(all)) {
        out->assign(n, node);
        return true;
      }
    }
    return false;
  };
  switch (spec.strategy) {
    case PlacementStrategy::kStrictPack:
      if (fits_one_node(&plan)) return plan;
      *why = "no single node has room for all bundles together (STRICT_PACK)";
      return {};
    case PlacementStrategy::kPack: {
      if (fits_one_node(&plan)) return plan;
      // Greedy: each bundle on a node already used if it fits, else on the roomiest node.
      std::vector<size_t> used;
      for (size_t i : order) {
        size_t chosen = free.size();
        for (size_t u : used) {
          if (free[u].second.Contains(bundles[i])) {
            chosen = u;
            break;
          }
        }
        if (chosen == free.size()) {
          int64_t most = -1;
          for (size_t k = 0; k < free.size(); ++k) {
            if (!free[k].second.Contains(bundles[i])) continue;
            int64_t cpus = free[k].second.Get("CPU");
            if (cpus > most) {
              most = cpus;
              chosen = k;
            }
          }
        }
        if (chosen == free.size()) {
          *why = "no node has room for bundle " + std::to_string(i) + " " + bundles[i].ToString();
          return {};
        }
        free[chosen].second.Subtract(bundles[i]);
        plan[i] = free[chosen].first;
        if (std::find(used.begin(), used.end(), chosen) == used.end()) used.push_back(chosen);
      }
      return plan;
    }
    case PlacementStrategy::kStrictSpread: {
      // One bundle per node: a bipartite matching of bundles to the nodes with room for them
      // (augmenting paths), so it succeeds whenever such an assignment exists.
      std::vector<int> holder(free.size(), -1);  // node -> bundle
      std::function<bool(size_t, std::vector<bool>&)> assign = [&](size_t i, std::vector<bool>& seen) {
        for (size_t k = 0; k < free.size(); ++k) {
          if (seen[k] || !free[k].second.Contains(bundles[i])) continue;
          seen[k] = true;
          if (holder[k] < 0 || assign(static_cast<size_t>(holder[k]), seen)) {
            holder[k] = static_cast<int>(i);
            return true;
          }
        }
        return false;
      };
      for (size_t i : order) {
        std::vector<bool> seen(free.size(), false);
        if (!assign(i, seen)) {
          *why = "fewer nodes have room than the group has bundles (STRICT_SPREAD puts each on its own node)";
          return {};
        }
      }
      for (size_t k = 0; k < free.size(); ++k) {
        if (holder[k] >= 0) plan[static_cast<size_t>(holder[k])] = free[k].first;
      }
      return plan;
    }
    case PlacementStrategy::kSpread: {
      std::vector<int> count(free.size(), 0);
      // Each bundle on the node with the fewest of this group's bundles.
      for (size_t i : order) {
        size_t chosen = free.size();
        for (size_t k = 0; k < free.size(); ++k) {
          if (!free[k].second.Contains(bundles[i])) continue;
          if (chosen == free.size() || count[k] < count[chosen]) chosen = k;
        }
        if (chosen == free.size()) {
          *why = "no node has room for bundle " + std::to_string(i) + " " + bundles[i].ToString();
          return {};
        }
        free[chosen].second.Subtract(bundles[i]);
        ++count[chosen];
        plan[i] = free[chosen].first;
      }
      return plan;
    }
  }
  return {};
}

void PlacementGroupManager::TryPlace(Group& g) {
  if (g.in_flight || (g.info.state != State::kPending && g.info.state != State::kRescheduling)) return;
  // Not before every node that may hold some of its bundles from before a head restart has
  // rejoined (and returned them) or been declared dead.
  if (stale_.count(g.info.spec.id)) {
    for (const auto& n : nodes_->All()) {
      if (n.alive && nodes_->AwaitingRejoin(n.node_index)) return;
    }
    stale_.erase(g.info.spec.id);
  }
  std::vector<std::pair<uint32_t, protocol::ResourceMap>> free;
  for (const auto& n : nodes_->All()) {
    if (!n.alive || (n.flags & protocol::NodeInfo::kDriverNode)) continue;
    free.emplace_back(n.node_index, n.available);
  }
  std::string why;
  std::vector<uint32_t> plan = Plan(g.info.spec, free, &why);
  if (plan.empty()) {
    g.info.message = "pending: " + why;
    return;
  }
  g.info.bundle_nodes = plan;
  g.awaiting.clear();
  std::map<uint32_t, protocol::BundleReservation> per_node;
  for (size_t i = 0; i < plan.size(); ++i) {
    auto& r = per_node[plan[i]];
    r.group = g.info.spec.id;
    r.bundles.emplace_back(static_cast<uint32_t>(i), g.info.spec.bundles[i]);
    g.awaiting[plan[i]] = 1;
  }
  g.in_flight = true;
  Persist(g);
  for (const auto& [node, r] : per_node) callbacks_.reserve(node, r);
}

void PlacementGroupManager::OnReserved(uint32_t node, const protocol::BundlesReserved& msg) {
  auto it = groups_.find(msg.group);
  if (it == groups_.end()) return;
  Group& g = it->second;
  auto a = g.awaiting.find(node);
  if (a == g.awaiting.end() || a->second != 1) return;
  a->second = msg.ok ? 2 : 0;
  if (!msg.ok) g.info.message = "pending: node " + std::to_string(node) + " refused a bundle: " + msg.error;
  for (const auto& [n, state] : g.awaiting) {
    if (state == 1) return;  // more answers to come
  }
  Conclude(g);
}

void PlacementGroupManager::Conclude(Group& g) {
  g.in_flight = false;
  if (g.info.state == State::kRemoved) return;
  bool all = std::all_of(g.awaiting.begin(), g.awaiting.end(), [](const auto& a) { return a.second == 2; });
  if (all) {
    g.info.state = State::kCreated;
    g.info.message = "created";
    Persist(g);
    QLOG(kInfo) << "placement group " << g.info.spec.id.Hex() << " created";
    return;
  }
  // Some node refused: every reserved bundle goes back, and a later attempt starts afresh.
  callbacks_.release_everywhere(g.info.spec.id, false);
}

void PlacementGroupManager::Remove(const ObjectID& id, const std::string& why) {
  auto it = groups_.find(id);
  if (it == groups_.end() || it->second.info.state == State::kRemoved) return;
  it->second.info.state = State::kRemoved;
  it->second.info.message = "removed: " + why;
  Persist(it->second);
  stale_.erase(id);
  callbacks_.release_everywhere(id, true);
}

void PlacementGroupManager::OnNodeDead(uint32_t node) {
  for (auto& [id, g] : groups_) {
    if (g.info.state == State::kRemoved) continue;
    if (g.in_flight && g.awaiting.count(node) && g.awaiting[node] == 1) {
      g.awaiting[node] = 0;
      bool pending = std::any_of(g.awaiting.begin(), g.awaiting.end(), [](const auto& a) { return a.second == 1; });
      if (!pending) Conclude(g);
      continue;
    }
    if (g.info.state == State::kCreated &&
        std::find(g.info.bundle_nodes.begin(), g.info.bundle_nodes.end(), node) != g.info.bundle_nodes.end()) {
      // Its bundles there are gone: take the rest back and place the whole group again.
      g.info.state = State::kRescheduling;
      g.info.message = "rescheduling: node " + std::to_string(node) + " died";
      Persist(g);
      callbacks_.release_everywhere(id, false);
    }
  }
  Retry();
}

void PlacementGroupManager::OnJobEnded(uint64_t job_id) {
  std::vector<ObjectID> doomed;
  for (const auto& [id, g] : groups_) {
    if (!g.info.spec.detached && g.info.spec.job_id == job_id && g.info.state != State::kRemoved) doomed.push_back(id);
  }
  for (const auto& id : doomed) Remove(id, "its job's driver exited");
}

void PlacementGroupManager::Retry() {
  for (auto& [id, g] : groups_) TryPlace(g);
}

std::vector<PlacementGroupInfo> PlacementGroupManager::Query(const protocol::PlacementGroupQuery& q) const {
  std::vector<PlacementGroupInfo> out;
  for (const auto& [id, g] : groups_) {
    if (!q.id.IsNil() && id != q.id) continue;
    if (q.id.IsNil() && !q.name.empty() &&
        (g.info.spec.name != q.name || g.info.spec.name_space != q.name_space || g.info.state == State::kRemoved)) {
      continue;
    }
    out.push_back(g.info);
  }
  return out;
}

}  // namespace quanta
