// Placement groups: gang reservation of resource bundles across nodes (Ray's semantics).
//
// A group is created pending; the manager plans where its bundles go from the node table's
// free resources (PACK: as few nodes as possible; STRICT_PACK: one node; SPREAD: as many nodes
// as possible; STRICT_SPREAD: each bundle on a different node), asks those nodes to reserve
// them (ReserveBundles) and marks the group created once every node said yes. If any node
// refuses (its resources changed meanwhile), the others give theirs back and the group stays
// pending until a later attempt (when resources change, and every second) succeeds.
//
// A reserved bundle turns into resources named after the group, as in Ray —
// CPU_group_<i>_<id> and CPU_group_<id> for bundle i — which tasks in the group ask for, so the
// ordinary scheduler places them. Removing a group (or its job ending, unless it is detached)
// returns the bundles; a dead node's bundles make the group reschedule them.
//
// With a TableStore, every change of a group is written through ("placement_groups", by id).
// After a head restart (Restore), created groups stay created (their nodes still hold the
// bundles); a group that was being placed may have bundles reserved on some nodes, so it goes
// back to pending and each node, when it rejoins, is told to return that group's bundles
// (StaleOn) before the group is placed again.
//
// Ownership: owned by the ControlServer; the one place that changes the group table.
// Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "control/node_table.h"
#include "control/table_store.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class PlacementGroupManager {
 public:
  struct Callbacks {
    std::function<void(uint32_t node, const protocol::BundleReservation&)> reserve;
    // Tell every alive node to return the group's bundles (`removed`: for good; its tasks fail).
    std::function<void(const ObjectID& group, bool removed)> release_everywhere;
  };

  PlacementGroupManager(const NodeTable* nodes, Callbacks callbacks, TableStore* store = nullptr)
      : nodes_(nodes), callbacks_(std::move(callbacks)), store_(store) {}

  // Reloads the groups from the store; returns how many.
  Result<size_t> Restore();
  // Groups that were being placed when the head went down: a rejoining node must return their
  // bundles (it may hold some) before they are placed again.
  std::vector<ObjectID> StaleGroups() const { return {stale_.begin(), stale_.end()}; }

  Status Create(protocol::PlacementGroupSpec spec);
  void Remove(const ObjectID& id, const std::string& why);
  void OnReserved(uint32_t node, const protocol::BundlesReserved& msg);
  void OnNodeDead(uint32_t node);
  void OnJobEnded(uint64_t job_id);
  // Tries to place every pending group (after resource changes, and periodically).
  void Retry();
  std::vector<protocol::PlacementGroupInfo> Query(const protocol::PlacementGroupQuery& q) const;

  // Plans bundle -> node for `spec` over these free resources; empty if it does not fit now.
  // `why` says what is missing. Exposed for unit tests.
  static std::vector<uint32_t> Plan(const protocol::PlacementGroupSpec& spec,
                                    const std::vector<std::pair<uint32_t, protocol::ResourceMap>>& free,
                                    std::string* why);

 private:
  struct Group {
    protocol::PlacementGroupInfo info;
    std::map<uint32_t, int> awaiting;  // node -> 1 waiting, 2 reserved, 0 refused
    bool in_flight = false;
  };
  void TryPlace(Group& g);
  void Conclude(Group& g);
  void Persist(const Group& g);

  const NodeTable* nodes_;
  Callbacks callbacks_;
  TableStore* store_;
  std::unordered_map<ObjectID, Group, ObjectIDHash> groups_;
  std::set<ObjectID> stale_;
};

}  // namespace quanta
