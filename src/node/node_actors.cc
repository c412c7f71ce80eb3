// NodeServer: the actor half (creation, ordered method calls, death, restarts, names).
// See actor_table.h for the model and node_server.h for the task half.
#include <signal.h>

#include <algorithm>

#include "common/logging.h"
#include "node/node_server.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::TaskKind;

void NodeServer::SubmitActorTask(Client& client, const TaskID& id) {
  Task& task = tasks_.at(id);
  if (task.spec.kind == TaskKind::kActorCreation) {
    actors_.Create(task.spec);
    return;
  }
  Actor* actor = actors_.Find(task.spec.actor_id);
  if (actor == nullptr || actor->state == Actor::State::kDead) {
    std::string reason = actor ? actor->death_reason : "the actor does not exist on this node";
    FailTask(id, SystemError(ObjectKind::kActorDied, reason));
    return;
  }
  actor->queue.push_back(id);
}

void NodeServer::PumpActor(Actor& actor) {
  if (actor.state == Actor::State::kDead) {
    while (!actor.queue.empty()) {
      TaskID id = actor.queue.front();
      actor.queue.pop_front();
      deps_.Forget(id);
      FailTask(id, SystemError(ObjectKind::kActorDied, actor.death_reason));
    }
    return;
  }
  if (actor.state != Actor::State::kAlive) return;  // calls wait for (re)start
  Client* worker = FindClient(actor.worker);
  if (worker == nullptr) return;
  while (!actor.queue.empty()) {
    auto it = tasks_.find(actor.queue.front());
    if (it == tasks_.end()) {  // failed meanwhile
      actor.queue.pop_front();
      continue;
    }
    if (!it->second.deps_ready) break;  // keep submission order
    actor.queue.pop_front();
    Task& task = it->second;
    protocol::ExecuteTask msg;
    msg.spec = task.spec;
    msg.args.reserve(task.spec.arg_refs.size());
    for (const auto& arg : task.spec.arg_refs) {
      const ObjectTable::Entry* e = objects_.Find(arg);
      msg.args.push_back(e ? ValueForClient(arg, e->value, worker, true)
                           : SystemError(ObjectKind::kObjectLost, "argument was freed"));
    }
    task.worker = worker->id;
    actor.in_flight.insert(task.spec.task_id);
    worker->conn->Send(MessageType::kExecuteTask, msg);
  }
}

void NodeServer::OnActorTaskDone(Client& worker, protocol::TaskDone msg) {
  Actor* actor = actors_.Find(worker.actor_id);
  auto it = tasks_.find(msg.task_id);
  if (actor == nullptr || it == tasks_.end()) return;
  const protocol::TaskSpec& spec = it->second.spec;
  if (msg.returns.size() != spec.num_returns) {
    FailTask(msg.task_id, SystemError(ObjectKind::kWorkerCrashed, "actor returned the wrong number of values"));
    return;
  }
  bool failed = !msg.returns.empty() && msg.returns[0].IsError();
  if (spec.kind == TaskKind::kActorCreation) {
    if (failed) {
      // The constructor raised: every call to this actor reports that error.
      // The worker reports a constructor failure as kActorDied text with the traceback.
      std::string reason = msg.returns[0].kind == ObjectKind::kActorDied
                               ? msg.returns[0].data
                               : "the constructor " + actor->creation.actor.class_name + ".__init__ failed";
      FinishTask(msg.task_id, std::move(msg.returns));
      actor->restarts_left = 0;
      KillActorProcess(*actor, reason, true);
      return;
    }
    // Placed and constructed: swap the placement demand for what it holds while alive.
    if (!worker.lent_back) queue_.Release(worker.held);
    worker.held = ResourceSet(actor->creation.actor.lifetime_resources);
    if (!worker.lent_back) queue_.Acquire(worker.held);
    actor->state = Actor::State::kAlive;
    FinishTask(msg.task_id, std::move(msg.returns));
    PumpActor(*actor);
    return;
  }
  bool exiting = failed && msg.returns[0].kind == ObjectKind::kActorDied;  // exit_actor()
  FinishTask(msg.task_id, std::move(msg.returns));
  if (exiting) {
    actor->restarts_left = 0;
    KillActorProcess(*actor, "the actor called exit_actor()", true);
  }
}

void NodeServer::OnActorWorkerLost(Client& worker, const Status& why) {
  Actor* actor = actors_.Find(worker.actor_id);
  if (actor == nullptr || actor->worker != worker.id) return;
  actor->worker = 0;
  std::string reason = actor->death_reason.empty()
                           ? "the actor " + actor->creation.actor.class_name + " died: its process (pid " +
                                 std::to_string(worker.pid) + ") exited unexpectedly (" + why.message() + ")"
                           : actor->death_reason;
  // Calls that were running are retried after the restart if they have retries left
  // (max_task_retries), otherwise they fail; queued ones wait for the restart or fail with it.
  bool will_restart = actor->state != Actor::State::kDead && actor->restarts_left != 0;
  std::vector<TaskID> running(actor->in_flight.begin(), actor->in_flight.end());
  std::sort(running.begin(), running.end(), [](const TaskID& a, const TaskID& b) {
    return a.Sequence() < b.Sequence();
  });
  actor->in_flight.clear();
  for (auto it = running.rbegin(); it != running.rend(); ++it) {
    auto t = tasks_.find(*it);
    if (t == tasks_.end()) continue;
    if (will_restart && t->second.retries_left != 0) {
      if (t->second.retries_left > 0) --t->second.retries_left;
      actor->queue.push_front(*it);
    } else {
      FailTask(*it, SystemError(ObjectKind::kActorDied, reason));
    }
  }
  bool constructing = tasks_.count(actor->id) > 0;
  if (constructing) {
    // Died inside __init__ (or before): the creation task itself failed.
    FailTask(actor->id, SystemError(ObjectKind::kActorDied, reason));
  }
  if (actor->state != Actor::State::kDead && actor->restarts_left != 0) {
    if (actor->restarts_left > 0) --actor->restarts_left;
    actor->state = Actor::State::kRestarting;
    QLOG(kInfo) << "restarting actor " << actor->creation.actor.class_name;
    Task& task = tasks_[actor->id];
    task.spec = actor->creation;
    task.spec.nested_refs.clear();  // pins are still held from the first creation
    task.spec.arg_refs = actor->creation.arg_refs;
    task.submitter = 0;
    MakeReady(actor->id);
    return;
  }
  MarkActorDead(*actor, reason);
}

void NodeServer::MarkActorDead(Actor& actor, const std::string& reason) {
  if (actor.state == Actor::State::kDead) return;
  actor.state = Actor::State::kDead;
  if (actor.death_reason.empty()) actor.death_reason = reason;
  if (!actor.name.empty()) actors_.DropName(actor.name_space, actor.name);
  PumpActor(actor);  // fails the queued calls
  std::vector<ObjectID> pins = actor.creation.arg_refs;
  pins.insert(pins.end(), actor.creation.nested_refs.begin(), actor.creation.nested_refs.end());
  ReleaseRefs(pins);
}

void NodeServer::KillActorProcess(Actor& actor, const std::string& reason, bool no_restart) {
  if (no_restart) actor.restarts_left = 0;
  if (actor.death_reason.empty() || no_restart) actor.death_reason = reason;
  Client* worker = FindClient(actor.worker);
  if (worker != nullptr) {
    pool_.Kill(worker->worker_token, SIGKILL);  // OnActorWorkerLost follows when it exits
    return;
  }
  if (actor.state == Actor::State::kPending || actor.state == Actor::State::kRestarting) {
    // Not placed yet: take its creation out of the queues.
    if (deps_.Forget(actor.id) || queue_.Remove(actor.id)) {
      FailTask(actor.id, SystemError(ObjectKind::kActorDied, reason));
    }
  }
  if (actor.restarts_left == 0) MarkActorDead(actor, reason);
}

void NodeServer::HandleFreed(const std::vector<ObjectID>& freed) {
  for (const auto& id : freed) {
    if (store_) store_->Delete(id);
    if (id.Index() != 1) continue;  // actor objects are creation returns (index 1)
    Actor* actor = actors_.Find(id.TaskId());
    if (actor == nullptr || actor->creation.actor.detached || actor->state == Actor::State::kDead) continue;
    KillActorProcess(*actor, "the actor was terminated because every handle to it went out of scope", true);
  }
}

void NodeServer::OnKillActor(const protocol::KillActor& msg) {
  Actor* actor = actors_.Find(msg.actor_id);
  if (actor == nullptr || actor->state == Actor::State::kDead) return;
  KillActorProcess(*actor, "the actor was killed with quanta.kill()", msg.no_restart);
}

void NodeServer::OnActorName(Client& client, const protocol::ActorName& msg) {
  protocol::ActorNameReply reply;
  reply.request_id = msg.request_id;
  switch (msg.op) {
    case protocol::ActorNameOp::kRegister:
      reply.ok = actors_.RegisterName(msg.name_space, msg.name, msg.actor_id, msg.handle_blob);
      if (!reply.ok) {
        reply.error = "an actor named '" + msg.name + "' already exists in namespace '" + msg.name_space + "'";
      } else if (Actor* actor = actors_.Find(msg.actor_id)) {
        actor->name = msg.name;
        actor->name_space = msg.name_space;
      }
      break;
    case protocol::ActorNameOp::kLookup:
      if (const std::string* blob = actors_.LookupName(msg.name_space, msg.name)) {
        reply.ok = true;
        reply.handle_blob = *blob;
      } else {
        reply.error = "no actor named '" + msg.name + "' in namespace '" + msg.name_space + "'";
      }
      break;
    case protocol::ActorNameOp::kUnregister:
      actors_.DropName(msg.name_space, msg.name);
      reply.ok = true;
      break;
  }
  client.conn->Send(MessageType::kActorNameReply, reply);
}

void NodeServer::ReplenishPool() {
  if (shutting_down_) return;
  int pool_workers = static_cast<int>(pool_.num_processes()) - actor_workers_;
  while (pool_workers < options_.prestart_workers) {
    if (!StartWorker()) break;
    ++pool_workers;
  }
}

}  // namespace quanta
