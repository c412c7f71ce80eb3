// The actors hosted on this node: creation, ordered method calls, death, restarts, kill, names.
//
// Actor state lives in the ActorTable (see actor_table.h for the model); the named-actor
// registry is the control service's (control/actor_directory.h). An actor's calls are
// tasks in the TaskTable; this class keeps them in per-actor FIFO order and sends each to the
// actor's worker once it reaches the front and its arguments are ready. When the actor's
// process dies it restarts the actor (max_restarts), retries the calls that were running
// (max_task_retries) or fails them with ActorDiedError. A non-detached actor is killed when the
// last handle anywhere is dropped (its "actor object" is freed); a detached one keeps its
// actor object pinned by the node while it lives.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "node/actor_table.h"
#include "node/object_manager.h"
#include "node/task.h"
#include "node/worker_dispatcher.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class ActorManager {
 public:
  struct Callbacks {
    std::function<void(const TaskID&, std::vector<protocol::ObjectValue>)> finish_task;
    std::function<void(const TaskID&, const protocol::ObjectValue&)> fail_task;
    std::function<void(const TaskID&)> make_ready;  // (re)queue a creation task
    // Takes a creation task out of the dependency wait or the ready queue; false if in neither.
    std::function<bool(const TaskID&)> unqueue;
    // The actor's state changed (for the control service's directory). `located`: it is
    // placed on this node; false while a creation submitted here may still go elsewhere.
    std::function<void(const protocol::ActorInfo&, bool located)> report;
  };

  ActorManager(TaskTable* tasks, WorkerDispatcher* dispatcher, ObjectManager* objects, Callbacks callbacks);

  // A creation task was submitted here, or forwarded here by its owner (the task is in the table).
  void OnCreationSubmitted(const TaskID& id);
  bool Hosts(const ObjectID& actor_id) { return actors_.Find(actor_id) != nullptr; }
  // The client id of the worker that may take a lane to the actor (alive here, and it never
  // restarts, so a call in flight on a lane dies with it exactly as Ray's would; not threaded,
  // whose results this node batches better than a lane); 0 if none.
  uint64_t LaneWorker(const ObjectID& actor_id);
  // A call that came on a lane is handed to this node (LaneAdopt): it is in flight on the
  // actor's worker like the calls this node sent. False if that worker no longer hosts it.
  bool AdoptLaneCall(const ObjectID& actor_id, uint64_t worker, const TaskID& call);
  // The actor's creation goes to another node: returns the calls queued here (in order) and
  // forgets it.
  std::deque<TaskID> Relinquish(const ObjectID& actor_id);
  // A method call was submitted; false if it failed at once (the actor is dead or unknown).
  bool OnCallSubmitted(const TaskID& id);
  // Calls that waited elsewhere (the router, while the actor was re-created here after its node
  // died) go ahead of the calls queued since, in their order.
  void AdoptCalls(const ObjectID& actor_id, const std::deque<TaskID>& calls);
  // Sends the actor's calls whose turn has come (their arguments are ready).
  void Pump(const ObjectID& actor_id);

  void OnPlaced(const ObjectID& actor_id, Worker& worker);
  void OnTaskDone(Worker& worker, protocol::TaskDone msg);
  void OnWorkerLost(const Worker& worker, const Status& why);
  void Kill(const ObjectID& actor_id, bool no_restart);
  // The job's driver exited: its non-detached actors are killed (no restart).
  void OnJobEnded(uint64_t job_id, const std::string& why);
  // A placement group was removed: the actors placed in it are killed (no restart), as in Ray.
  void OnGroupRemoved(const std::string& group_hex);
  // Objects freed by reference counting: an actor whose object went is terminated.
  void OnObjectsFreed(const std::vector<ObjectID>& freed);
  // Drops an actor call that has not started; one that runs is not interrupted (as in Ray).
  void CancelCall(Task& task, const protocol::CancelTask& msg);
  // The actor's creation failed before it was placed (lost argument, unschedulable, its node
  // died): it is dead, and so are the calls waiting for it.
  void OnCreationFailed(const ObjectID& actor_id, const std::string& reason,
                        protocol::ObjectKind kind = protocol::ObjectKind::kActorDied);

  size_t size() const { return actors_.size(); }

 private:
  void KillProcess(Actor& actor, const std::string& reason, bool no_restart);
  void MarkDead(Actor& actor, const std::string& reason);
  void Report(const Actor& actor);

  TaskTable* tasks_;
  WorkerDispatcher* dispatcher_;
  ObjectManager* objects_;
  Callbacks callbacks_;
  ActorTable actors_;
};

}  // namespace quanta
