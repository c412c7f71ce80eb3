#include "node/task_manager.h"

#include "common/logging.h"

namespace quanta {

using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::TaskKind;

TaskManager::TaskManager(TaskTable* tasks, ObjectManager* objects, WorkerDispatcher* dispatcher, ActorManager* actors,
                         ClusterScheduler* scheduler, RemoteTasks* remote)
    : tasks_(tasks),
      objects_(objects),
      dispatcher_(dispatcher),
      actors_(actors),
      scheduler_(scheduler),
      remote_(remote) {}

void TaskManager::OnSubmit(LocalClient& client, protocol::TaskSpec spec) {
  TaskID id = spec.task_id;
  if (tasks_->count(id)) {
    QLOG(kWarning) << "duplicate task id " << id.Hex() << " ignored";
    return;
  }
  for (uint32_t i = 0; i < spec.num_returns; ++i) objects_->AddReturnHolder(client.id, spec.ReturnId(i));
  std::vector<ObjectID> pinned, missing;
  for (const auto& arg : spec.arg_refs) {
    if (objects_->Pin(arg)) {  // an id of ours that exists, or a borrow of another node's
      pinned.push_back(arg);
      if (!objects_->IsSealed(arg)) missing.push_back(arg);
      continue;
    }
    // Nobody here holds it, so it will never be sealed: fail now rather than wait forever.
    objects_->Release(pinned);
    ObjectValue lost = SystemError(ObjectKind::kObjectLost, "argument object " + arg.Hex() + " of task " +
                                                                spec.name + " does not exist: it was freed, or "
                                                                "never existed in this cluster");
    for (uint32_t i = 0; i < spec.num_returns; ++i) objects_->Seal(spec.ReturnId(i), lost);
    return;
  }
  for (const auto& arg : missing) objects_->RequestValue(arg);  // borrowed: ask the owner
  std::vector<ObjectID> nested;
  for (const auto& ref : spec.nested_refs) {
    if (objects_->Pin(ref)) nested.push_back(ref);  // freed or unknown: nothing to keep alive
  }
  spec.nested_refs = std::move(nested);
  Task& task = (*tasks_)[id];
  task.retries_left = spec.max_retries;
  task.submitter = client.id;
  task.spec = std::move(spec);
  if (task.spec.kind == TaskKind::kActorCreation) actors_->OnCreationSubmitted(id);
  if (task.spec.kind == TaskKind::kActorMethod && !actors_->OnCallSubmitted(id)) return;  // failed at once
  if (missing.empty()) {
    MakeReady(id);
  } else {
    deps_.Wait(id, missing);
  }
}

void TaskManager::OnObjectSealed(const ObjectID& id) {
  std::vector<TaskID> ready;
  deps_.OnAvailable(id, &ready);
  for (const auto& t : ready) MakeReady(t);
}

void TaskManager::MakeReady(const TaskID& id) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  Task& task = it->second;
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_->Find(arg);
    if (e != nullptr && e->value.IsError()) {
      ObjectValue error = e->value;  // the argument's failure is this task's failure
      bool actor_call = task.spec.kind == TaskKind::kActorMethod;
      ObjectID actor_id = task.spec.actor_id;
      Fail(id, error);
      if (actor_call) actors_->Pump(actor_id);  // later calls may have waited behind this one
      return;
    }
  }
  if (PlaceRemotely(task)) return;
  RunHere(id);
}

void TaskManager::RunHere(const TaskID& id) {
  Task& task = tasks_->at(id);
  std::vector<ObjectID> fetch;
  for (const auto& arg : task.spec.arg_refs) {
    if (objects_->NeedsFetch(arg)) fetch.push_back(arg);
  }
  if (fetch.empty()) {
    Queue(id);
    return;
  }
  task.fetching = static_cast<int>(fetch.size());
  for (const auto& arg : fetch) {
    objects_->WhenLocal(arg, [this, id, arg](const Status& st) {
      auto it = tasks_->find(id);
      if (it == tasks_->end() || it->second.fetching == 0) return;
      if (!st.ok()) {
        it->second.fetching = 0;
        bool actor_call = it->second.spec.kind == TaskKind::kActorMethod;
        ObjectID actor_id = it->second.spec.actor_id;
        Fail(id, SystemError(st.code() == StatusCode::kResourceExhausted ? ObjectKind::kStoreFull : ObjectKind::kObjectLost,
                             "argument object " + arg.Hex() + " could not be brought to this node: " + st.message()));
        if (actor_call) actors_->Pump(actor_id);
        return;
      }
      if (--it->second.fetching == 0) Queue(id);
    });
  }
}

void TaskManager::Queue(const TaskID& id) {
  Task& task = tasks_->at(id);
  task.deps_ready = true;
  if (task.spec.kind == TaskKind::kActorMethod) {
    actors_->Pump(task.spec.actor_id);
    return;
  }
  dispatcher_->Enqueue(id, ResourceSet(task.spec.resources));
}

bool TaskManager::PlaceRemotely(Task& task) {
  if (task.spec.kind != TaskKind::kNormal || task.is_remote()) return false;
  ResourceSet demand(task.spec.resources);
  auto placement = scheduler_->Choose(demand);
  if (placement.kind != ClusterScheduler::Placement::kRemote) return false;
  if (!remote_->Forward(task, placement.node)) return false;
  scheduler_->NoteSent(placement.node, demand);
  return true;
}

void TaskManager::ReplaceInfeasible() {
  for (const TaskID& id : dispatcher_->TakeInfeasible()) {
    auto it = tasks_->find(id);
    if (it == tasks_->end()) continue;
    if (!PlaceRemotely(it->second)) dispatcher_->Enqueue(id, ResourceSet(it->second.spec.resources));
  }
}

void TaskManager::Finish(const TaskID& id, std::vector<ObjectValue> returns) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  Task task = std::move(it->second);
  tasks_->erase(it);
  if (task.is_remote()) {  // its owner seals the returns and holds the pins
    remote_->SendResult(task, std::move(returns));
    return;
  }
  for (uint32_t i = 0; i < returns.size(); ++i) objects_->Seal(task.spec.ReturnId(i), std::move(returns[i]));
  // An actor's constructor arguments stay pinned while it may restart (the actor drops them).
  if (task.spec.kind == TaskKind::kActorCreation) return;
  std::vector<ObjectID> pins = task.spec.arg_refs;
  pins.insert(pins.end(), task.spec.nested_refs.begin(), task.spec.nested_refs.end());
  objects_->Release(pins);
}

void TaskManager::Fail(const TaskID& id, const ObjectValue& error) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  std::vector<ObjectValue> returns(it->second.spec.num_returns, error);
  for (auto& v : returns) v.nested_refs.clear();
  Finish(id, std::move(returns));
}

bool TaskManager::Unqueue(const TaskID& id) { return deps_.Forget(id) || dispatcher_->Remove(id); }

void TaskManager::OnWorkerDied(const TaskID& id, pid_t pid, const Status& why) {
  auto t = tasks_->find(id);
  if (t == tasks_->end()) return;
  Task& task = t->second;
  task.worker = 0;
  if (task.force_cancelled || task.cancelled) {
    Fail(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
  } else if (task.retries_left != 0) {
    if (task.retries_left > 0) --task.retries_left;
    QLOG(kInfo) << "retrying task " << task.spec.name << " after its worker died";
    MakeReady(id);
  } else {
    Fail(id, SystemError(ObjectKind::kWorkerCrashed, "the worker process (pid " + std::to_string(pid) +
                                                         ") running task " + task.spec.name +
                                                         " died unexpectedly: " + why.message()));
  }
}

void TaskManager::OnCancel(const protocol::CancelTask& msg) {
  TaskID id = msg.object_id.TaskId();
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;  // finished already: nothing to cancel
  Task& task = it->second;
  if (task.spec.kind == TaskKind::kActorCreation) return;  // use quanta.kill for actors
  if (task.spec.kind == TaskKind::kActorMethod) {
    actors_->CancelCall(task, msg);
    return;
  }
  if (Unqueue(id)) {
    Fail(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
    return;
  }
  dispatcher_->CancelSent(task, msg);
}

}  // namespace quanta

namespace quanta {

void TaskManager::OnJobEnded(uint64_t job_id, const std::string& why) {
  std::vector<TaskID> ids;
  for (const auto& [id, task] : *tasks_) {
    if (task.spec.job_id == job_id) ids.push_back(id);
  }
  ObjectValue cancelled = SystemError(ObjectKind::kCancelled, why);
  for (const auto& id : ids) {
    auto it = tasks_->find(id);
    if (it == tasks_->end()) continue;
    Task& task = it->second;
    if (task.spec.kind == TaskKind::kActorCreation) continue;  // the actor's end handles it
    if (task.spec.kind == TaskKind::kActorMethod) {
      actors_->CancelCall(task, protocol::CancelTask{task.spec.ReturnId(0), false, false});
      continue;
    }
    if (Unqueue(id)) {
      Fail(id, cancelled);
      continue;
    }
    if (task.worker != 0) {  // running, or queued at a worker: its worker goes
      task.cancelled = task.force_cancelled = true;
      task.retries_left = 0;
      dispatcher_->KillWorkerRunning(task);
    }
  }
  actors_->OnJobEnded(job_id, why);
}

}  // namespace quanta
