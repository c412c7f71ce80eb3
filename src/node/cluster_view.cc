#include "node/cluster_view.h"

namespace quanta {

void ClusterView::ApplyNodeTable(const protocol::NodeTable& table) {
  for (const auto& info : table.nodes) {
    auto it = nodes_.find(info.node_index);
    bool was_alive = it != nodes_.end() && it->second.alive;
    bool known = it != nodes_.end();
    if (known && !it->second.alive) continue;  // dead is final
    nodes_[info.node_index] = info;
    if (info.alive && !was_alive && on_added_) on_added_(nodes_[info.node_index]);
    if (!info.alive && (was_alive || !known) && on_dead_) on_dead_(nodes_[info.node_index]);
  }
}

void ClusterView::ApplyResourceView(const protocol::ResourceView& view) {
  for (const auto& e : view.nodes) {
    auto it = nodes_.find(e.node_index);
    if (it == nodes_.end() || !it->second.alive) continue;
    it->second.available = e.available;
    it->second.total = e.total;
  }
  if (on_resources_) on_resources_();
}

const protocol::NodeInfo* ClusterView::Find(uint32_t index) const {
  auto it = nodes_.find(index);
  return it == nodes_.end() ? nullptr : &it->second;
}

bool ClusterView::IsAlive(uint32_t index) const {
  const protocol::NodeInfo* n = Find(index);
  return n != nullptr && n->alive;
}

std::vector<protocol::NodeInfo> ClusterView::Snapshot(const protocol::NodeInfo& local) const {
  std::vector<protocol::NodeInfo> out;
  bool have_local = false;
  for (const auto& [index, n] : nodes_) {
    if (index == local.node_index) {
      out.push_back(local);
      have_local = true;
    } else {
      out.push_back(n);
    }
  }
  if (!have_local) out.push_back(local);
  return out;
}

}  // namespace quanta
