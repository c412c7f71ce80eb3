// The placement-group bundles reserved on this node (docs/cluster-design.md; Ray's naming).
//
// Reserving bundle i of group G turns its resources into resources of the group: {CPU: 2}
// leaves the node's free pool and comes back as CPU_group_i_G and CPU_group_G (plus
// bundle_group_i_G and bundle_group_G, 1 each, so a task that asks for nothing else can still be
// placed in the group). Tasks in the group ask for those names, so ordinary resource matching
// places them. Returning the bundles does the reverse; when the group is removed for good, the
// tasks that use it fail (or are killed while running), as in Ray.
//
// Ownership: owned by the NodeServer; changes the dispatcher's totals. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "node/worker_dispatcher.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class GroupResources {
 public:
  // Called when a group was removed for good: tasks asking for its resources must go.
  using OnRemoved = std::function<void(const std::string& group_hex)>;
  GroupResources(WorkerDispatcher* dispatcher, OnRemoved on_removed)
      : dispatcher_(dispatcher), on_removed_(std::move(on_removed)) {}

  protocol::BundlesReserved Reserve(const protocol::BundleReservation& r);
  void Return(const protocol::BundleReservation& r);
  size_t num_groups() const { return groups_.size(); }

  // The resources a bundle becomes (what Reserve adds to the node).
  static ResourceSet BundleResources(const std::string& group_hex, uint32_t index, const ResourceSet& bundle);

 private:
  struct Reserved {
    ResourceSet original;  // taken from the node's pool
    ResourceSet added;     // the group's resources that replaced it
  };
  WorkerDispatcher* dispatcher_;
  OnRemoved on_removed_;
  std::unordered_map<ObjectID, Reserved, ObjectIDHash> groups_;
};

}  // namespace quanta
