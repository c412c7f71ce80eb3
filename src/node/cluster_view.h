// What this node knows of the cluster: every node's info (from the control service's node
// table broadcasts) and their available resources (from its resource-view broadcasts).
//
// It is a cache, refreshed by the ControlClient; the control service alone decides who is alive.
// The scheduler reads it to place tasks on other nodes; clients read it through GetClusterInfo.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "protocol/cluster_messages.h"

namespace quanta {

class ClusterView {
 public:
  // Called when a node is first seen alive, and when one is seen dead.
  using NodeEvent = std::function<void(const protocol::NodeInfo&)>;
  ClusterView(NodeEvent on_added, NodeEvent on_dead) : on_added_(std::move(on_added)), on_dead_(std::move(on_dead)) {}

  void set_local_index(uint32_t index) { local_index_ = index; }
  // Called after every resource-view update.
  void set_on_resources(std::function<void()> cb) { on_resources_ = std::move(cb); }
  uint32_t local_index() const { return local_index_; }

  void ApplyNodeTable(const protocol::NodeTable& table);
  void ApplyResourceView(const protocol::ResourceView& view);

  const protocol::NodeInfo* Find(uint32_t index) const;
  bool IsAlive(uint32_t index) const;
  // Every known node (dead ones too), in index order; `local` replaces this node's own entry
  // (its resources are live, not as last reported).
  std::vector<protocol::NodeInfo> Snapshot(const protocol::NodeInfo& local) const;
  template <typename F>
  void ForEachAlive(F&& f) const {
    for (const auto& [index, n] : nodes_) {
      if (n.alive) f(n);
    }
  }
  size_t size() const { return nodes_.size(); }
  // A node with this id was part of the cluster and is dead (node ids are never reused).
  bool IsDeadNodeId(const std::string& node_id) const {
    for (const auto& [index, n] : nodes_) {
      if (n.node_id == node_id) return !n.alive;
    }
    return false;
  }

 private:
  uint32_t local_index_ = 0;
  std::map<uint32_t, protocol::NodeInfo> nodes_;
  NodeEvent on_added_, on_dead_;
  std::function<void()> on_resources_;
};

}  // namespace quanta
