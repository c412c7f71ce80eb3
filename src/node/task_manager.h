// The life of the tasks submitted to this node: submission, waiting for arguments, running,
// retries, cancellation, completion.
//
// A submitted task pins its argument objects and the refs nested in its arguments, waits in the
// DependencyTracker until every argument is sealed, then goes to the WorkerDispatcher's ready
// queue (plain tasks, actor creations) or to its actor's FIFO (method calls). When it finishes,
// its returns are sealed in the ObjectManager and its pins released. A task whose worker dies is
// retried (max_retries) or fails with WorkerCrashedError; a cancelled one is never retried.
//
// Ownership: owned by the NodeServer; owns the TaskTable and the DependencyTracker.
// Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "node/actor_manager.h"
#include "node/actor_router.h"
#include "node/cluster_scheduler.h"
#include "node/infeasible_tasks.h"
#include "node/object_manager.h"
#include "node/remote_tasks.h"
#include "node/lineage.h"
#include "node/task.h"
#include "node/task_events.h"
#include "node/worker_dispatcher.h"
#include "scheduler/dependency_tracker.h"

namespace quanta {

class TaskManager {
 public:
  struct Options {
    std::chrono::milliseconds infeasible_timeout{300000};  // 0: wait forever
    TaskEventBuffer* events = nullptr;  // where task events are recorded (none: not recorded)
  };
  TaskManager(TaskTable* tasks, ObjectManager* objects, ObjectDirectory* directory, WorkerDispatcher* dispatcher,
              ActorManager* actors, ActorRouter* router, ClusterScheduler* scheduler, RemoteTasks* remote,
              ClientRegistry* clients, Lineage* lineage, Options options);

  void OnSubmit(LocalClient& client, protocol::TaskSpec spec);
  // An object became available: tasks waiting only for it become ready.
  void OnObjectSealed(const ObjectID& id);
  void MakeReady(const TaskID& id);
  void Finish(const TaskID& id, std::vector<protocol::ObjectValue> returns);
  void Fail(const TaskID& id, const protocol::ObjectValue& error);
  // A plain task's worker reported its result: finished, or re-executed when it raised an
  // exception its retry_exceptions allows (`retryable`) and it has retries left.
  void OnTaskDone(const TaskID& id, std::vector<protocol::ObjectValue> returns, bool retryable);
  // The task ran past its timeout_s: it is interrupted (its worker killed if it does not stop).
  void OnTimedOut(const TaskID& id);
  // Takes a task out of the dependency wait or the ready queue; false if it was in neither.
  bool Unqueue(const TaskID& id);
  void OnWorkerDied(const TaskID& id, pid_t pid, const Status& why);
  void OnCancel(const protocol::CancelTask& msg);
  // Cancels the copy of a task that its owner forwarded here.
  void OnCancelFromOwner(uint32_t from, const protocol::CancelTask& msg);
  // Sends a cancellation on to the node running a task this node forwarded.
  std::function<void(uint32_t node, const protocol::CancelTask&)> cancel_remote;
  // A job's driver is gone: its queued tasks fail, its running ones are killed (never retried),
  // its queued actor calls are dropped and its non-detached actors are killed.
  void OnJobEnded(uint64_t job_id, const std::string& why);

  // A node that can run demands this one cannot joined: tasks queued here as infeasible are
  // placed again.
  void ReplaceInfeasible();
  // Tasks waiting here while other nodes have room move there (end of every iteration; cheap
  // when nothing waits).
  void Spill();
  // Fails tasks no node could run for longer than the infeasible timeout (every second).
  void ExpireInfeasible();
  // A placement group was removed: its tasks here fail, running ones with their workers.
  void OnGroupRemoved(const std::string& group_hex);
  // An actor this node owns lost its node and may restart: its creation is submitted again
  // (placed like a new one; its arguments pinned again for the new incarnation).
  void Recreate(protocol::TaskSpec creation);
  // Calls that waited in the router for an actor now re-created here join its queue.
  void AdoptActorCalls(const ObjectID& actor, std::deque<TaskID> calls);
  // Lineage: an owned object's every copy is gone. Runs the task that made it again (its
  // arguments rebuilt the same way when they are lost too), or seals the object with the error
  // saying why it cannot be rebuilt. True if the object will be sealed again.
  bool Rebuild(const ObjectID& id);
  // A task this node forwarded did not run: an argument was on no node any more. It is placed
  // again (its lost arguments rebuilt first) while it has retries left, else fails with `error`.
  void OnArgumentsLost(const TaskID& id, std::vector<protocol::ObjectValue> error);
  // A node died: tasks sent to it are retried elsewhere or fail with NodeDiedError.
  void OnNodeDead(uint32_t node, const std::string& reason);

  size_t num_waiting() const { return deps_.num_waiting(); }
  bool has_infeasible() const { return !infeasible_.empty(); }

 private:
  // Names `task_name` in `error`, which that task inherits from a failed argument.
  static void AddToErrorChain(protocol::ObjectValue& error, const std::string& task_name);
  // Places a ready plain task where the ClusterScheduler says: true if it left this node (or
  // waits for a node that can run it), false if it runs here.
  bool PlaceRemotely(Task& task);
  ClusterScheduler::Request RequestFor(const Task& task, const ResourceSet& demand) const;
  void ParkInfeasible(Task& task, const std::string& why);
  // Runs here: brings stored arguments to this node first, then queues it (or its actor's FIFO).
  void RunHere(const TaskID& id);
  void Queue(const TaskID& id);
  // Pins a pulled local copy of a stored argument for the task (until ReleaseCopies, at its end).
  void HoldCopy(Task& task, const ObjectID& arg);
  void ReleaseCopies(Task& task);
  // A timed-out task stopped: retried if its retry_exceptions covers TaskTimeoutError, else failed.
  void FinishTimedOut(const TaskID& id);

  TaskTable* tasks_;
  ObjectManager* objects_;
  ObjectDirectory* directory_;
  WorkerDispatcher* dispatcher_;
  ActorManager* actors_;
  ActorRouter* router_;
  ClusterScheduler* scheduler_;
  RemoteTasks* remote_;
  ClientRegistry* clients_;
  Lineage* lineage_;
  Options options_;
  DependencyTracker deps_;
  InfeasibleTasks infeasible_;  // ready tasks no node can run now
};

}  // namespace quanta
