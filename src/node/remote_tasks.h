// Tasks that cross nodes (docs/cluster-design.md §6).
//
// Owner side: a ready task the ClusterScheduler placed elsewhere is sent to that node with its
// argument values (ForwardTask, with the function's definition the first time that node gets
// it); the task stays in the owner's table, marked forwarded, until its TaskResult comes back
// and the owner finishes it as if it had run here.
// Executing side: a ForwardTask becomes a local task owned by the remote node — same queue,
// same workers, same retries — whose returns go back to the owner instead of being sealed here.
// Its stored arguments are pulled here first (and kept pinned until it ends); its stored returns
// stay here as primary copies the owner frees later. A result waits behind this node's
// unacknowledged borrow registrations (rule 2), and the refs inside it stay held here until the
// owner says it holds them (HandOffDone, rule 3).
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "node/cluster_view.h"
#include "node/function_table.h"
#include "node/object_directory.h"
#include "node/object_manager.h"
#include "node/peer_manager.h"
#include "node/task.h"
#include "scheduler/resource_set.h"

namespace quanta {

class RemoteTasks {
 public:
  struct Callbacks {
    std::function<void(const TaskID&, const ResourceSet&)> enqueue_local;  // executing side
    std::function<void(const TaskID&, std::vector<protocol::ObjectValue>)> finish;  // owner side
    // Owner side: the executing node found an argument on no node; `error` if it is not retried.
    std::function<void(const TaskID&, std::vector<protocol::ObjectValue> error)> args_lost;
    // Executing side, actors: a creation to host here; a call (false: failed at once); its
    // arguments are here.
    std::function<void(const TaskID&)> actor_creation;
    std::function<bool(const TaskID&)> actor_call;
    std::function<void(const ObjectID& actor)> pump_actor;
    // A function whose definition did not come with its task: fetched from the control service.
    std::function<void(const std::string& id, std::function<void(const std::string*)>)> fetch_function;
  };

  RemoteTasks(TaskTable* tasks, ObjectManager* objects, ObjectDirectory* directory, PeerManager* peers,
              FunctionTable* functions, const ClusterView* view, Callbacks callbacks);

  // Owner: sends the (ready) task to `node`. False if an argument cannot travel (then the
  // caller runs or fails it here).
  bool Forward(Task& task, uint32_t node);
  // Executing node: a task (or actor creation or call) from its owner.
  Status OnForwardTask(uint32_t from, protocol::ForwardTask msg);
  // Owner: the result of a task it forwarded.
  Status OnTaskResult(uint32_t from, protocol::TaskResult msg);
  // Executing node: sends a finished remote task's returns to its owner.
  void SendResult(const Task& task, std::vector<protocol::ObjectValue> returns);
  // The owner holds the refs a result carried: release our hold on them.
  void OnHandOffDone(uint32_t from, uint64_t handoff);
  // Holds refs (already pinned) that a message to `owner` carries until it answers HandOffDone
  // with the returned id (generator items use this like results do).
  uint64_t HoldForOwner(uint32_t owner, std::vector<ObjectID> refs) {
    uint64_t id = next_handoff_++;
    handoffs_[id] = {owner, std::move(refs)};
    return id;
  }

  uint64_t forwarded() const { return forwarded_; }
  uint64_t executed_for_others() const { return executed_; }

 private:
  TaskTable* tasks_;
  ObjectManager* objects_;
  ObjectDirectory* directory_;
  PeerManager* peers_;
  FunctionTable* functions_;
  const ClusterView* view_;
  Callbacks callbacks_;
  // Once its arguments (and function) are here: queued, or handed to its actor.
  void Arrived(const TaskID& id);
  std::unordered_map<uint32_t, std::unordered_set<std::string>> functions_sent_;  // by node
  std::unordered_map<uint64_t, std::pair<uint32_t, std::vector<ObjectID>>> handoffs_;  // id -> (to, refs held)
  std::unordered_set<TaskID, ObjectIDHash> args_lost_;  // executing side: results to flag as such
  uint64_t next_handoff_ = 1;
  uint64_t forwarded_ = 0, executed_ = 0;
};

}  // namespace quanta
