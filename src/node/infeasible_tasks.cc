#include "node/infeasible_tasks.h"

namespace quanta {

using protocol::TaskKind;

std::string InfeasibleTasks::Park(const protocol::TaskSpec& spec, const std::string& why,
                                  const std::string& largest_node, Clock::time_point now) {
  parked_.emplace(spec.task_id, now);
  for (const auto& [name, amount] : spec.resources) {
    if (name.find("_group_") != std::string::npos) return "";
  }
  if (!warned_.insert(why).second) return "";
  bool actor = spec.kind == TaskKind::kActorCreation;
  std::string timeout = timeout_.count() == 0
                            ? "it waits until a node that can run it joins"
                            : std::string("it waits until a node that can run it joins, and fails with ") +
                                  (actor ? "ActorUnschedulableError" : "TaskUnschedulableError") + " after " +
                                  std::to_string(timeout_.count() / 1000) +
                                  " s (_system_config infeasible_task_timeout_s; 0 waits forever)";
  return (actor ? "actor " : "task ") + spec.name + " cannot run yet: " + why + " (" + largest_node + "); " +
         timeout + ". Other tasks are not affected.";
}

InfeasibleTasks::Parked InfeasibleTasks::TakeAll() {
  Parked out = std::move(parked_);
  parked_.clear();
  return out;
}

void InfeasibleTasks::Restore(const TaskID& id, Clock::time_point since) {
  auto it = parked_.find(id);
  if (it != parked_.end()) it->second = since;  // its clock keeps running from the first park
}

std::vector<TaskID> InfeasibleTasks::TakeExpired(Clock::time_point now) {
  std::vector<TaskID> expired;
  if (timeout_.count() == 0) return expired;
  for (const auto& [id, since] : parked_) {
    if (now - since >= timeout_) expired.push_back(id);
  }
  for (const auto& id : expired) parked_.erase(id);
  return expired;
}

std::string InfeasibleTasks::ExpiryText(const protocol::TaskSpec& spec, const std::string& why,
                                        const std::string& largest_node) const {
  // "actor ..." makes it ActorUnschedulableError (for the creation and the actor's calls).
  const char* what = spec.kind == TaskKind::kActorCreation ? "actor " : "task ";
  return what + spec.name + " could not be scheduled: " + why + ", and no such node joined within " +
         std::to_string(timeout_.count() / 1000) + " s (" + largest_node + ")";
}

}  // namespace quanta
