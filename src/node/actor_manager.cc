#include "node/actor_manager.h"

#include <signal.h>

#include <algorithm>
#include <deque>

#include "common/logging.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::TaskKind;

namespace {
ObjectID ActorObjectOf(const ObjectID& actor_id) { return actor_id.ReturnId(0); }
}  // namespace

ActorManager::ActorManager(TaskTable* tasks, WorkerDispatcher* dispatcher, ObjectManager* objects, Callbacks callbacks)
    : tasks_(tasks), dispatcher_(dispatcher), objects_(objects), callbacks_(std::move(callbacks)) {}

void ActorManager::OnCreationSubmitted(const TaskID& id) {
  const Task& task = tasks_->at(id);
  Actor& actor = actors_.Create(task.spec);
  actor.owner = task.owner;
  actor.remote_args = task.remote_args;
  // A detached actor outlives every handle: the node keeps its actor object alive, so a handle
  // looked up later by name still names a live object.
  if (actor.creation.actor.detached) objects_->Pin(ActorObjectOf(actor.id));
  Report(actor);
}

std::deque<TaskID> ActorManager::Relinquish(const ObjectID& actor_id) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr) return {};
  std::deque<TaskID> queued = std::move(actor->queue);
  if (actor->creation.actor.detached) objects_->Release({ActorObjectOf(actor_id)});
  actors_.Erase(actor_id);
  return queued;
}

void ActorManager::Report(const Actor& actor) {
  if (!callbacks_.report) return;
  protocol::ActorInfo info;
  info.actor_id = actor.id;
  using S = protocol::ActorInfo::State;
  switch (actor.state) {
    case Actor::State::kPending: info.state = S::kPending; break;
    case Actor::State::kAlive: info.state = S::kAlive; break;
    case Actor::State::kRestarting: info.state = S::kRestarting; break;
    case Actor::State::kDead: info.state = S::kDead; break;
  }
  info.owner_node = static_cast<uint32_t>(actor.id.Creator() >> 32);
  info.job_id = actor.creation.job_id;
  info.class_name = actor.creation.actor.class_name;
  info.name = actor.name;
  info.name_space = actor.name_space;
  info.detached = actor.creation.actor.detached;
  info.restarts = static_cast<uint32_t>(std::max(0, actor.creation.actor.max_restarts - actor.restarts_left));
  info.restartable = actor.state != Actor::State::kDead && actor.restarts_left != 0;
  info.death_reason = actor.death_reason;
  // A creation submitted here is not located until it is placed on a worker here: until then
  // the scheduler may still send it to another node, which reports it from there.
  bool located = actor.owner != 0 || actor.state != Actor::State::kPending || actor.worker != 0;
  callbacks_.report(info, located);  // the node fills in its own index
}

bool ActorManager::OnCallSubmitted(const TaskID& id) {
  Task& task = tasks_->at(id);
  Actor* actor = actors_.Find(task.spec.actor_id);
  if (actor == nullptr || actor->state == Actor::State::kDead) {
    std::string reason = actor ? actor->death_reason : "the actor does not exist on this node";
    callbacks_.fail_task(id, SystemError(actor ? actor->death_kind : ObjectKind::kActorDied, reason));
    return false;
  }
  actor->queue.push_back(id);
  return true;
}

void ActorManager::AdoptCalls(const ObjectID& actor_id, const std::deque<TaskID>& calls) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr) {
    for (const auto& id : calls) {
      callbacks_.fail_task(id, SystemError(ObjectKind::kActorDied, "the actor is gone from this node"));
    }
    return;
  }
  actor->queue.insert(actor->queue.begin(), calls.begin(), calls.end());
}

void ActorManager::Pump(const ObjectID& actor_id) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr) return;
  if (actor->state == Actor::State::kDead) {
    while (!actor->queue.empty()) {
      TaskID id = actor->queue.front();
      actor->queue.pop_front();
      callbacks_.unqueue(id);
      callbacks_.fail_task(id, SystemError(actor->death_kind, actor->death_reason));
    }
    return;
  }
  if (actor->state != Actor::State::kAlive) return;  // calls wait for (re)start
  Worker* worker = dispatcher_->Find(actor->worker);
  if (worker == nullptr) return;
  while (!actor->queue.empty()) {
    auto it = tasks_->find(actor->queue.front());
    if (it == tasks_->end()) {  // failed meanwhile
      actor->queue.pop_front();
      continue;
    }
    if (!it->second.deps_ready) break;  // keep submission order
    actor->queue.pop_front();
    actor->in_flight.insert(it->first);
    dispatcher_->SendExecute(*worker, it->first);
  }
}

void ActorManager::OnPlaced(const ObjectID& actor_id, Worker& worker) {
  if (Actor* actor = actors_.Find(actor_id)) actor->worker = worker.client;
}

uint64_t ActorManager::LaneWorker(const ObjectID& actor_id) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr || actor->state != Actor::State::kAlive || actor->creation.actor.max_restarts != 0) return 0;
  // A threaded actor's results come from several threads at once; through this node they leave
  // batched, one TCP write per loop iteration, which measured more calls/s than one segment per
  // result on its lane (docs/cluster-design.md §8). Sync and async actors take lanes.
  const protocol::ActorOptions& o = actor->creation.actor;
  if (!o.is_async && (o.max_concurrency > 1 || !o.concurrency_groups.empty())) return 0;
  return actor->worker;
}

bool ActorManager::AdoptLaneCall(const ObjectID& actor_id, uint64_t worker, const TaskID& call) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr || actor->state != Actor::State::kAlive || actor->worker != worker) return false;
  actor->in_flight.insert(call);
  return true;
}

void ActorManager::OnTaskDone(Worker& worker, protocol::TaskDone msg) {
  Actor* actor = actors_.Find(worker.actor_id);
  auto it = tasks_->find(msg.task_id);
  if (actor == nullptr || it == tasks_->end()) return;
  const protocol::TaskSpec& spec = it->second.spec;
  actor->in_flight.erase(msg.task_id);
  if (msg.returns.size() != spec.num_returns) {
    callbacks_.fail_task(msg.task_id, SystemError(ObjectKind::kWorkerCrashed, "actor returned the wrong number of values"));
    return;
  }
  bool failed = !msg.returns.empty() && msg.returns[0].IsError();
  if (spec.kind == TaskKind::kActorCreation) {
    if (failed) {
      // The constructor raised: every call to this actor reports that error. The worker
      // reports a constructor failure as kActorDied text with the traceback.
      std::string reason = msg.returns[0].kind == ObjectKind::kActorDied
                               ? msg.returns[0].data
                               : "the constructor " + actor->creation.actor.class_name + ".__init__ failed";
      callbacks_.finish_task(msg.task_id, std::move(msg.returns));
      actor->restarts_left = 0;
      KillProcess(*actor, reason, true);
      return;
    }
    // Placed and constructed: swap the placement demand for what it holds while alive.
    dispatcher_->SwapHeld(worker, ResourceSet(actor->creation.actor.lifetime_resources));
    actor->state = Actor::State::kAlive;
    Report(*actor);
    callbacks_.finish_task(msg.task_id, std::move(msg.returns));
    Pump(actor->id);
    return;
  }
  bool exiting = failed && msg.returns[0].kind == ObjectKind::kActorDied;  // exit_actor()
  if (msg.retryable && !exiting && !it->second.cancelled && it->second.retries_left != 0) {
    // The method raised an exception its retry_exceptions allows: run it again (max_task_retries),
    // ahead of the calls submitted after it.
    if (it->second.retries_left > 0) --it->second.retries_left;
    actor->queue.push_front(msg.task_id);
    Pump(actor->id);
    return;
  }
  callbacks_.finish_task(msg.task_id, std::move(msg.returns));
  if (exiting) {
    actor->restarts_left = 0;
    KillProcess(*actor, "the actor called exit_actor()", true);
  }
}

void ActorManager::OnWorkerLost(const Worker& worker, const Status& why) {
  Actor* actor = actors_.Find(worker.actor_id);
  if (actor == nullptr || actor->worker != worker.client) return;
  actor->worker = 0;
  std::string reason = actor->death_reason.empty()
                           ? "the actor " + actor->creation.actor.class_name + " died: its process (pid " +
                                 std::to_string(worker.pid) + ") exited unexpectedly (" + why.message() + ")"
                           : actor->death_reason;
  // Calls that were running are retried after the restart if they have retries left
  // (max_task_retries), otherwise they fail; queued ones wait for the restart or fail with it.
  bool will_restart = actor->state != Actor::State::kDead && actor->restarts_left != 0;
  std::vector<TaskID> running(actor->in_flight.begin(), actor->in_flight.end());
  std::sort(running.begin(), running.end(),
            [](const TaskID& a, const TaskID& b) { return a.Sequence() < b.Sequence(); });
  actor->in_flight.clear();
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    auto t = tasks_->find(*it);
    if (t == tasks_->end()) continue;
    if (will_restart && t->second.retries_left != 0) {
      if (t->second.retries_left > 0) --t->second.retries_left;
      actor->queue.push_front(*it);
    } else {
      callbacks_.fail_task(*it, SystemError(ObjectKind::kActorDied, reason));
    }
  }
  if (tasks_->count(actor->id)) {
    // Died inside __init__ (or before): the creation task itself failed.
    callbacks_.fail_task(actor->id, SystemError(ObjectKind::kActorDied, reason));
  }
  if (actor->state != Actor::State::kDead && actor->restarts_left != 0) {
    if (actor->restarts_left > 0) --actor->restarts_left;
    actor->state = Actor::State::kRestarting;
    Report(*actor);
    QLOG(kInfo) << "restarting actor " << actor->creation.actor.class_name;
    Task& task = (*tasks_)[actor->id];
    task.spec = actor->creation;
    task.spec.nested_refs.clear();  // pins are still held from the first creation
    task.submitter = 0;
    task.owner = actor->owner;            // a creation forwarded here restarts here,
    task.remote_args = actor->remote_args;  // with the arguments it came with
    callbacks_.make_ready(actor->id);
    return;
  }
  MarkDead(*actor, reason);
}

void ActorManager::MarkDead(Actor& actor, const std::string& reason) {
  if (actor.state == Actor::State::kDead) return;
  actor.state = Actor::State::kDead;
  if (actor.death_reason.empty()) actor.death_reason = reason;
  Report(actor);
  Pump(actor.id);  // fails the queued calls
  if (actor.owner != 0) {
    // Created for another node: its owner holds the argument refs; the copies pulled here go.
    if (SharedStore* store = objects_->store()) {
      for (size_t i = 0; i < actor.remote_args.size() && i < actor.creation.arg_refs.size(); ++i) {
        if (actor.remote_args[i].kind == ObjectKind::kStored) {
          store->Unpin(actor.creation.arg_refs[i], SharedStore::kNodePin, 1);
        }
      }
    }
    if (actor.creation.actor.detached) objects_->Release({ActorObjectOf(actor.id)});
    return;
  }
  std::vector<ObjectID> pins = actor.creation.arg_refs;
  pins.insert(pins.end(), actor.creation.nested_refs.begin(), actor.creation.nested_refs.end());
  if (actor.creation.actor.detached) pins.push_back(ActorObjectOf(actor.id));
  objects_->Release(pins);
}

void ActorManager::KillProcess(Actor& actor, const std::string& reason, bool no_restart) {
  if (no_restart) actor.restarts_left = 0;
  if (actor.death_reason.empty() || no_restart) actor.death_reason = reason;
  if (Worker* worker = dispatcher_->Find(actor.worker)) {
    dispatcher_->Kill(*worker, SIGKILL);  // OnWorkerLost follows when it exits
    return;
  }
  if (actor.state == Actor::State::kPending || actor.state == Actor::State::kRestarting) {
    // Not placed yet: take its creation out of the queues.
    if (callbacks_.unqueue(actor.id)) callbacks_.fail_task(actor.id, SystemError(ObjectKind::kActorDied, reason));
  }
  if (actor.restarts_left == 0) MarkDead(actor, reason);
}

void ActorManager::OnObjectsFreed(const std::vector<ObjectID>& freed) {
  for (const auto& id : freed) {
    if (id.Index() != 1) continue;  // actor objects are creation returns (index 1)
    Actor* actor = actors_.Find(id.TaskId());
    if (actor == nullptr || actor->creation.actor.detached || actor->state == Actor::State::kDead) continue;
    KillProcess(*actor, "the actor was terminated because every handle to it went out of scope", true);
  }
}

void ActorManager::Kill(const ObjectID& actor_id, bool no_restart) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr || actor->state == Actor::State::kDead) return;
  KillProcess(*actor, "the actor was killed with quanta.kill()", no_restart);
}

void ActorManager::OnJobEnded(uint64_t job_id, const std::string& why) {
  std::vector<ObjectID> doomed;
  actors_.ForEach([&](Actor& a) {
    if (a.creation.job_id == job_id && !a.creation.actor.detached && a.state != Actor::State::kDead) {
      doomed.push_back(a.id);
    }
  });
  for (const auto& id : doomed) {
    if (Actor* a = actors_.Find(id)) KillProcess(*a, "the actor was killed because " + why, true);
  }
}

void ActorManager::OnGroupRemoved(const std::string& group_hex) {
  std::vector<ObjectID> doomed;
  actors_.ForEach([&](Actor& a) {
    if (a.state == Actor::State::kDead) return;
    for (const auto& [name, amount] : a.creation.resources) {
      if (name.find(group_hex) != std::string::npos) {
        doomed.push_back(a.id);
        return;
      }
    }
  });
  for (const auto& id : doomed) {
    if (Actor* a = actors_.Find(id)) {
      KillProcess(*a, "the actor was killed because its placement group " + group_hex + " was removed", true);
    }
  }
}

void ActorManager::CancelCall(Task& task, const protocol::CancelTask& msg) {
  Actor* actor = actors_.Find(task.spec.actor_id);
  if (actor == nullptr) return;
  TaskID id = task.spec.task_id;
  if (actor->in_flight.count(id)) {
    // Already sent: the actor's worker drops it if it has not started it yet.
    if (Worker* worker = dispatcher_->Find(actor->worker)) dispatcher_->SendCancel(*worker, msg);
    return;
  }
  auto q = std::find(actor->queue.begin(), actor->queue.end(), id);
  if (q == actor->queue.end()) return;
  actor->queue.erase(q);
  callbacks_.unqueue(id);
  callbacks_.fail_task(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
  Pump(actor->id);
}

void ActorManager::OnCreationFailed(const ObjectID& actor_id, const std::string& reason, ObjectKind kind) {
  Actor* actor = actors_.Find(actor_id);
  if (actor == nullptr || actor->state == Actor::State::kDead || actor->state == Actor::State::kAlive) return;
  if (dispatcher_->Find(actor->worker) != nullptr) return;  // its process reports how it ended
  actor->restarts_left = 0;
  if (kind == ObjectKind::kUnschedulable) actor->death_kind = kind;
  MarkDead(*actor, reason);
}

}  // namespace quanta
