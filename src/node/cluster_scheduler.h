// Where a ready task runs: this node, or another one (docs/cluster-design.md §6).
//
// Pure policy over the ClusterView and the local resources; it sends nothing. Candidates are
// the alive nodes whose total resources fit the demand and that the task's strategy allows
// (NodeAffinity names one node; label selectors filter by node labels). Among them:
//   DEFAULT  the node holding most of the task's argument bytes when they are large and it has
//            the resources free now; else this node if free now; else another node free now
//            (rotating, so a burst is spread); else this node if it can run it at all (it waits
//            here and may spill later); else any candidate (it waits there).
//   SPREAD   rotates over the candidates free now (or over all of them).
//   NodeAffinity soft: the named node if it is alive and fits, else DEFAULT; hard: only it.
//   labels   hard expressions filter, soft ones are preferred.
// What was sent to a node is debited from its view until its next report, so a burst sent
// at once does not all go to the first free node.
//
// Ownership: owned by the NodeServer; reads the view and the queue it is given.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "node/cluster_view.h"
#include "scheduler/resource_set.h"
#include "scheduler/task_queue.h"

namespace quanta {

class ClusterScheduler {
 public:
  struct Placement {
    // kUnschedulable: it can never run (a hard affinity to a node that died): fail it now.
    enum Kind { kLocal, kRemote, kInfeasible, kUnschedulable };
    Kind kind = kLocal;
    uint32_t node = 0;
    std::string why;  // kInfeasible, kUnschedulable: what no node offers
  };
  struct Request {
    const ResourceSet* demand = nullptr;
    const protocol::SchedulingStrategy* strategy = nullptr;
    // Bytes of the task's stored arguments held by each node (for locality).
    std::vector<std::pair<uint32_t, uint64_t>> arg_bytes;
  };
  static constexpr uint64_t kLocalityBytes = 1u << 20;

  ClusterScheduler(const ClusterView* view, const TaskQueue* local) : view_(view), local_(local) {}

  Placement Choose(const Request& request);
  // How many more tasks of `demand` `node` can start now, by the view (minus what was sent).
  int64_t FreeSlots(uint32_t node, const ResourceSet& demand) const;
  // The other nodes whose free resources fit `demand` now, most free first.
  std::vector<uint32_t> NodesWithRoom(const ResourceSet& demand) const;
  void NoteSent(uint32_t node, const ResourceSet& demand) { debited_[node].Add(demand); }
  // A task sent to `node` finished there (its result came back): its demand is free again. If
  // no report came since it was sent, its debit goes; otherwise the last report may still show
  // it running, so it is credited until the next report (never beyond the node's totals).
  // Without this, short tasks sent one after another to the node holding their data see it
  // busy in a report older than the last result and go elsewhere.
  void NoteReturned(uint32_t node, const ResourceSet& demand);
  // A fresh resource report replaces what was debited and credited.
  void OnViewUpdated() {
    debited_.clear();
    credited_.clear();
  }
  // "node 3 with {CPU: 8, GPU: 1}" — the largest node, for infeasible-demand messages.
  std::string LargestNode() const;
  // Does a label expression ("in:a,b", "!in:a,b", "exists", "!exists") hold for these labels?
  static bool LabelMatches(const protocol::Labels& labels, const std::string& key, const std::string& expr);

 private:
  bool AllowedBy(const protocol::NodeInfo& n, const protocol::SchedulingStrategy& s) const;
  bool FreeNow(const protocol::NodeInfo& n, const ResourceSet& demand) const;
  Placement Default(const ResourceSet& demand, const std::vector<const protocol::NodeInfo*>& candidates,
                    const Request& request);

  const ClusterView* view_;
  const TaskQueue* local_;
  std::unordered_map<uint32_t, ResourceSet> debited_;   // sent since the node's last report
  std::unordered_map<uint32_t, ResourceSet> credited_;  // finished since then (see NoteReturned)
  uint32_t rotation_ = 0;
};

}  // namespace quanta
