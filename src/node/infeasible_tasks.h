// Ready tasks that no node of the cluster can run now ("infeasible"), each with when it started
// waiting, so that they are placed again when a node that can run them joins and fail with
// TaskUnschedulableError / ActorUnschedulableError after the timeout; and the warning drivers
// get, once per demand.
//
// Ownership: owned by the TaskManager; holds ids only (the TaskTable has the tasks).
// Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

class InfeasibleTasks {
 public:
  using Clock = std::chrono::steady_clock;
  using Parked = std::unordered_map<TaskID, Clock::time_point, ObjectIDHash>;

  // `timeout`: how long a task may wait (0: forever).
  explicit InfeasibleTasks(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  // Parks the task, waiting from `now`. Returns the warning for the drivers ("" if this demand was
  // warned about already, or the task waits for a placement group's bundles, which are being
  // reserved and say themselves why not). `largest_node` describes the biggest node there is.
  std::string Park(const protocol::TaskSpec& spec, const std::string& why, const std::string& largest_node,
                   Clock::time_point now = Clock::now());
  // Every parked task, to place again; Restore keeps a task's first waiting time if it is parked again.
  Parked TakeAll();
  void Restore(const TaskID& id, Clock::time_point since);
  // The tasks that have waited for the timeout or longer (no longer parked).
  std::vector<TaskID> TakeExpired(Clock::time_point now = Clock::now());
  // The message a task that expired fails with (after "could not be scheduled: <why>").
  std::string ExpiryText(const protocol::TaskSpec& spec, const std::string& why, const std::string& largest_node) const;
  void Forget(const TaskID& id) { parked_.erase(id); }
  bool empty() const { return parked_.empty(); }
  bool contains(const TaskID& id) const { return parked_.count(id) > 0; }

 private:
  std::chrono::milliseconds timeout_;
  Parked parked_;
  std::unordered_set<std::string> warned_;  // demands already warned about
};

}  // namespace quanta
