// Where a ready task runs: this node, or another one (docs/cluster-design.md §6).
//
// Pure policy over the ClusterView and the local resources; it sends nothing. The local node
// is preferred whenever it could run the demand at all; a demand it can never meet goes to a
// node whose total resources fit, preferring one whose reported free resources fit now and
// spreading a burst over them (the view is debited for what was sent until the next report).
//
// Ownership: owned by the NodeServer; reads the view and the queue it is given.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "node/cluster_view.h"
#include "scheduler/resource_set.h"
#include "scheduler/task_queue.h"

namespace quanta {

class ClusterScheduler {
 public:
  struct Placement {
    enum Kind { kLocal, kRemote, kInfeasible };
    Kind kind = kLocal;
    uint32_t node = 0;
  };

  ClusterScheduler(const ClusterView* view, const TaskQueue* local) : view_(view), local_(local) {}

  Placement Choose(const ResourceSet& demand);
  // The view had `node` with these free resources; `demand` was just sent there.
  void NoteSent(uint32_t node, const ResourceSet& demand);
  // A fresh report from the control service replaces what was debited.
  void OnViewUpdated() { debited_.clear(); }
  // The largest node (by CPUs), for infeasible-demand messages.
  std::string LargestNode() const;

 private:
  const ClusterView* view_;
  const TaskQueue* local_;
  std::unordered_map<uint32_t, ResourceSet> debited_;  // sent since the node's last report
  uint32_t rotation_ = 0;
};

}  // namespace quanta
