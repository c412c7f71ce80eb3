#include "node/task_manager.h"

#include <algorithm>
#include <cstdio>

#include "common/logging.h"

namespace quanta {

using protocol::ObjectKind;
using protocol::ObjectValue;
using protocol::TaskKind;

TaskManager::TaskManager(TaskTable* tasks, ObjectManager* objects, ObjectDirectory* directory,
                         WorkerDispatcher* dispatcher, ActorManager* actors, ActorRouter* router,
                         ClusterScheduler* scheduler, RemoteTasks* remote, ClientRegistry* clients, Lineage* lineage,
                         Options options)
    : tasks_(tasks),
      objects_(objects),
      directory_(directory),
      dispatcher_(dispatcher),
      actors_(actors),
      router_(router),
      scheduler_(scheduler),
      remote_(remote),
      clients_(clients),
      lineage_(lineage),
      options_(options),
      infeasible_(options.infeasible_timeout) {}

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
  if (options_.events) options_.events->Submitted(task);
  if (task.spec.kind == TaskKind::kActorCreation) actors_->OnCreationSubmitted(id);
  if (task.spec.kind == TaskKind::kActorMethod) {
    if (actors_->Hosts(task.spec.actor_id)) {
      if (!actors_->OnCallSubmitted(id)) return;  // failed at once
    } else if (!router_->Routes(task.spec.actor_id) &&
               static_cast<uint32_t>(task.spec.actor_id.Creator() >> 32) == directory_->local_index() &&
               clients_->Find(task.spec.actor_id.Creator()) == nullptr) {
      // Created by a client of this node that is gone, yet neither hosted here nor sent elsewhere.
      // (A creator still connected may not have sent the creation yet: a get_if_exists loser
      // can call the winner's actor first. That call waits in the router for the directory.)
      Fail(id, SystemError(ObjectKind::kActorDied, "no actor with id " + task.spec.actor_id.Hex() +
                                                       " exists (it was never created, or is long gone)"));
      return;
    } else {
      router_->OnCall(id);  // hosted on another node (or not placed yet)
      if (!tasks_->count(id)) return;
    }
  }
  if (missing.empty()) {
    MakeReady(id);
  } else {
    deps_.Wait(id, missing);
  }
}

void TaskManager::Recreate(protocol::TaskSpec spec) {
  TaskID id = spec.task_id;
  if (tasks_->count(id)) return;  // its creation is still on its way
  std::vector<ObjectID> pinned;
  for (const auto& arg : spec.arg_refs) {
    if (!objects_->Pin(arg)) {
      objects_->Release(pinned);
      QLOG(kWarning) << "cannot re-create actor " << spec.actor.class_name << ": its argument " << arg.Hex()
                     << " is gone";
      protocol::ActorInfo dead;
      dead.actor_id = spec.actor_id;
      router_->OnActorUpdate([&] {
        dead.state = protocol::ActorInfo::State::kDead;
        dead.death_reason = "the actor " + spec.actor.class_name + " died with its node and could not be " +
                            "re-created: its constructor argument " + arg.Hex() + " is gone";
        return dead;
      }());
      return;
    }
    pinned.push_back(arg);
  }
  Task& task = (*tasks_)[id];
  task.retries_left = spec.max_retries;
  task.spec = std::move(spec);
  actors_->OnCreationSubmitted(id);
  MakeReady(id);
}

bool TaskManager::Rebuild(const ObjectID& id) {
  if (id.Index() == ObjectID::kPutIndex || id.Index() == 0) return false;  // a put is not rebuilt
  TaskID task_id = id.TaskId();
  if (auto t = tasks_->find(task_id); t != tasks_->end() && t->second.is_streaming() && id.Index() >= 2) {
    return false;  // a generator's item: a re-run would not yield it again (it is a duplicate)
  }
  if (tasks_->count(task_id)) {  // running again already (or still): its returns come with it
    if (objects_->IsSealed(id)) objects_->Unseal(id);
    return true;
  }
  Lineage::Entry* entry = lineage_ ? lineage_->Find(task_id) : nullptr;
  auto fail = [&](ObjectKind kind, const std::string& why) {
    objects_->Unseal(id);
    objects_->Seal(id, SystemError(kind, "object " + id.Hex() + " was lost with the node holding its only copy " +
                                             "and cannot be rebuilt: " + why));
    return true;
  };
  if (entry == nullptr) {
    if (lineage_ && lineage_->WasEvicted(task_id)) {
      return fail(ObjectKind::kLineageEvicted, "the task that made it is no longer kept (the lineage budget, "
                                               "_system_config max_lineage_bytes, was exceeded)");
    }
    return false;  // never kept (not a task's stored return): the readers' own error stands
  }
  if (entry->retries_left == 0) {
    return fail(ObjectKind::kReconstructionFailed, "task " + entry->spec.name + " that made it has no retries "
                                                   "left (max_retries)");
  }
  protocol::TaskSpec spec = entry->spec;
  int retries_left = entry->retries_left > 0 ? entry->retries_left - 1 : entry->retries_left;
  // An argument freed since is made again from its own lineage while that is kept (as in Ray).
  for (const auto& arg : spec.arg_refs) {
    bool gone = objects_->Find(arg) == nullptr && !objects_->table().IsForeign(arg);
    if (gone && (arg.Index() == ObjectID::kPutIndex || arg.Index() == 0 || lineage_->Find(arg.TaskId()) == nullptr)) {
      return fail(ObjectKind::kLineageEvicted, "its task's argument " + arg.Hex() + " was freed");
    }
  }
  std::vector<ObjectID> pinned, missing, remake;
  for (const auto& arg : spec.arg_refs) {
    if (!objects_->Pin(arg)) {
      objects_->Recreate(arg);  // pending, pinned by this task
      remake.push_back(arg);
    }
    pinned.push_back(arg);
  }
  // Every return of the task whose bytes are gone waits for the new run (the others keep theirs).
  for (uint32_t i = 0; i < spec.num_returns; ++i) {
    ObjectID r = spec.ReturnId(i);
    if (r == id || objects_->IsLost(r)) objects_->Unseal(r);
  }
  QLOG(kInfo) << "rebuilding object " << id.Hex() << ": running task " << spec.name << " again (lineage)";
  Task& task = (*tasks_)[task_id];
  task.retries_left = retries_left;
  task.spec = std::move(spec);
  for (const auto& arg : remake) {
    if (!tasks_->count(arg.TaskId())) Rebuild(arg);  // seals it with an error if it cannot be made
  }
  for (const auto& arg : pinned) {
    if (!objects_->IsSealed(arg)) missing.push_back(arg);
  }
  if (options_.events) options_.events->Submitted(task);
  for (const auto& arg : missing) objects_->RequestValue(arg);
  if (missing.empty()) {
    MakeReady(task_id);
  } else {
    deps_.Wait(task_id, missing);
  }
  return true;
}

void TaskManager::OnArgumentsLost(const TaskID& id, std::vector<ObjectValue> error) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  Task& task = it->second;
  task.forwarded_to = 0;
  if (task.cancelled || task.retries_left == 0 || task.spec.kind != TaskKind::kNormal) {
    Finish(id, std::move(error));
    return;
  }
  if (task.retries_left > 0) --task.retries_left;
  MakeReady(id);
}

void TaskManager::AdoptActorCalls(const ObjectID& actor, std::deque<TaskID> calls) {
  actors_->AdoptCalls(actor, calls);
  for (const auto& id : calls) {
    auto it = tasks_->find(id);
    if (it == tasks_->end() || !it->second.deps_ready) continue;  // still waiting for arguments
    it->second.deps_ready = false;
    RunHere(id);  // brings arguments held on other nodes here
  }
  actors_->Pump(actor);
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
  // Arguments of ours lost with a node are rebuilt first (lineage); the task waits for them.
  std::vector<ObjectID> rebuilding;
  for (const auto& arg : task.spec.arg_refs) {
    if (objects_->IsLost(arg) && Rebuild(arg) && !objects_->IsSealed(arg)) rebuilding.push_back(arg);
  }
  if (!rebuilding.empty()) {
    deps_.Wait(id, rebuilding);
    return;
  }
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_->Find(arg);
    if (e != nullptr && e->value.IsError()) {
      ObjectValue error = e->value;  // the argument's failure is this task's failure
      AddToErrorChain(error, task.spec.name);
      bool actor_call = task.spec.kind == TaskKind::kActorMethod;
      ObjectID actor_id = task.spec.actor_id;
      Fail(id, error);
      if (actor_call) actors_->Pump(actor_id);  // later calls may have waited behind this one
      return;
    }
  }
  if (task.spec.kind == TaskKind::kActorMethod && !actors_->Hosts(task.spec.actor_id)) {
    // Its actor is elsewhere: the actor's node brings the arguments there.
    task.deps_ready = true;
    router_->Pump(task.spec.actor_id);
    return;
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
      HoldCopy(it->second, arg);
      if (--it->second.fetching == 0) Queue(id);
    });
  }
}

void TaskManager::HoldCopy(Task& task, const ObjectID& arg) {
  SharedStore* store = objects_->store();
  // Only pulled copies can vanish (evicted); primaries spill and come back when pinned.
  if (store == nullptr || task.is_remote() || !objects_->HasLocalCopy(arg) || !store->IsSecondary(arg)) return;
  if (std::find(task.held_copies.begin(), task.held_copies.end(), arg) != task.held_copies.end()) return;
  if (store->Pin(arg, SharedStore::kNodePin).ok()) task.held_copies.push_back(arg);
}

void TaskManager::ReleaseCopies(Task& task) {
  SharedStore* store = objects_->store();
  if (store != nullptr) {
    for (const auto& arg : task.held_copies) store->Unpin(arg, SharedStore::kNodePin, 1);
  }
  task.held_copies.clear();
}

void TaskManager::Queue(const TaskID& id) {
  Task& task = tasks_->at(id);
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_->Find(arg);
    if (e != nullptr && e->sealed && e->value.kind == ObjectKind::kStored) HoldCopy(task, arg);
  }
  task.deps_ready = true;
  if (task.spec.kind == TaskKind::kActorMethod) {
    actors_->Pump(task.spec.actor_id);
    return;
  }
  if (options_.events) {
    options_.events->Scheduled(task, directory_->local_index());
  }
  dispatcher_->Enqueue(id, ResourceSet(task.spec.resources));
}

bool TaskManager::PlaceRemotely(Task& task) {
  if (task.spec.kind == TaskKind::kActorMethod || task.is_remote()) return false;
  ResourceSet demand(task.spec.resources);
  auto placement = scheduler_->Choose(RequestFor(task, demand));
  if (placement.kind == ClusterScheduler::Placement::kLocal) return false;
  if (placement.kind == ClusterScheduler::Placement::kInfeasible) {
    ParkInfeasible(task, placement.why);
    return true;
  }
  if (placement.kind == ClusterScheduler::Placement::kUnschedulable) {
    const char* what = task.spec.kind == TaskKind::kActorCreation ? "actor " : "task ";
    Fail(task.spec.task_id, SystemError(ObjectKind::kUnschedulable, what + task.spec.name + " cannot run: " + placement.why));
    return true;
  }
  task.spec.attempt = TaskAttempt(task.spec, task.retries_left, false);  // the node running it records under it
  if (!remote_->Forward(task, placement.node)) return false;
  if (options_.events) options_.events->Scheduled(task, placement.node);
  scheduler_->NoteSent(placement.node, demand);
  if (task.spec.kind == TaskKind::kActorCreation) {
    // The actor will live there: calls queued here so far follow it, later ones go straight.
    std::vector<ObjectID> pins = task.spec.arg_refs;
    pins.insert(pins.end(), task.spec.nested_refs.begin(), task.spec.nested_refs.end());
    router_->OnCreationPlaced(task.spec.actor_id, placement.node, actors_->Relinquish(task.spec.actor_id),
                              std::move(pins), task.spec);
  }
  return true;
}

ClusterScheduler::Request TaskManager::RequestFor(const Task& task, const ResourceSet& demand) const {
  ClusterScheduler::Request r;
  r.demand = &demand;
  r.strategy = &task.spec.scheduling;
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_->Find(arg);
    if (e == nullptr || e->value.kind != ObjectKind::kStored) continue;
    auto loc = protocol::StoredLocation::Decode(e->value.data);
    uint64_t size = loc.ok() ? loc->size : 0;
    auto add = [&](uint32_t node) {
      for (auto& [n, bytes] : r.arg_bytes) {
        if (n == node) {
          bytes += size;
          return;
        }
      }
      r.arg_bytes.emplace_back(node, size);
    };
    if (objects_->HasLocalCopy(arg)) add(directory_->local_index());
    for (uint32_t node : directory_->LocationsOf(arg)) add(node);
  }
  return r;
}

void TaskManager::ParkInfeasible(Task& task, const std::string& why) {
  std::string warning = infeasible_.Park(task.spec, why, scheduler_->LargestNode());
  if (warning.empty()) return;
  QLOG(kWarning) << warning;
  clients_->WarnDrivers(warning);
}

void TaskManager::ReplaceInfeasible() {
  for (const auto& [id, since] : infeasible_.TakeAll()) {
    auto it = tasks_->find(id);
    if (it == tasks_->end()) continue;
    if (!PlaceRemotely(it->second)) {
      RunHere(id);
    } else {
      infeasible_.Restore(id, since);  // still waiting
    }
  }
  for (const TaskID& id : dispatcher_->TakeInfeasible()) {
    auto it = tasks_->find(id);
    if (it == tasks_->end()) continue;
    if (!PlaceRemotely(it->second)) dispatcher_->Enqueue(id, ResourceSet(it->second.spec.resources));
  }
}

void TaskManager::ExpireInfeasible() {
  if (infeasible_.empty()) return;
  for (const auto& id : infeasible_.TakeExpired()) {
    auto it = tasks_->find(id);
    if (it == tasks_->end()) continue;
    ResourceSet demand(it->second.spec.resources);
    auto placement = scheduler_->Choose(RequestFor(it->second, demand));
    Fail(id, SystemError(ObjectKind::kUnschedulable,
                         infeasible_.ExpiryText(it->second.spec, placement.why, scheduler_->LargestNode())));
  }
}

void TaskManager::Spill() {
  // Tasks queued here for resources this node has no room for now go to nodes that have room.
  const TaskQueue& queue = dispatcher_->queue();
  if (queue.size() == 0) return;
  for (const ResourceSet& demand : queue.Classes()) {
    if (queue.available().Contains(demand) || !queue.IsFeasible(demand)) continue;
    for (uint32_t node : scheduler_->NodesWithRoom(demand)) {
      int64_t slots = scheduler_->FreeSlots(node, demand);
      std::vector<TaskID> moved = dispatcher_->TakeNewest(demand, static_cast<size_t>(slots), [&](const TaskID& id) {
        auto it = tasks_->find(id);
        if (it == tasks_->end()) return false;
        const Task& t = it->second;
        // Only plain tasks whose strategy lets them go anywhere.
        return t.spec.kind == TaskKind::kNormal && !t.is_remote() && !t.cancelled &&
               (t.spec.scheduling.kind == protocol::SchedulingStrategy::Kind::kDefault ||
                t.spec.scheduling.kind == protocol::SchedulingStrategy::Kind::kSpread || t.spec.scheduling.soft);
      });
      for (const auto& id : moved) {
        Task& t = tasks_->at(id);
        t.spec.attempt = TaskAttempt(t.spec, t.retries_left, false);
        if (remote_->Forward(t, node)) {
          if (options_.events) options_.events->Scheduled(t, node);
          scheduler_->NoteSent(node, demand);
        } else {
          dispatcher_->Enqueue(id, demand);
        }
      }
    }
  }
}

void TaskManager::OnGroupRemoved(const std::string& group_hex) {
  std::string why = "its placement group " + group_hex + " was removed";
  std::vector<TaskID> doomed;
  for (const auto& [id, task] : *tasks_) {
    for (const auto& [name, amount] : task.spec.resources) {
      if (name.find(group_hex) != std::string::npos) {
        doomed.push_back(id);
        break;
      }
    }
  }
  for (const auto& id : doomed) {
    auto it = tasks_->find(id);
    if (it == tasks_->end() || it->second.forwarded_to != 0) continue;  // the other node handles its copy
    Task& task = it->second;
    infeasible_.Forget(id);
    if (Unqueue(id) || task.worker == 0) {
      Fail(id, SystemError(ObjectKind::kUnschedulable, "task " + task.spec.name + " cannot run: " + why));
      continue;
    }
    task.kill_reason = why;
    task.retries_left = 0;
    dispatcher_->KillWorkerRunning(task);
  }
}

void TaskManager::OnNodeDead(uint32_t node, const std::string& reason) {
  std::vector<TaskID> lost, orphaned;
  for (const auto& [id, task] : *tasks_) {
    if (task.forwarded_to == node) lost.push_back(id);
    if (task.owner == node) orphaned.push_back(id);
  }
  for (const auto& id : lost) {
    Task& task = tasks_->at(id);
    task.forwarded_to = 0;
    task.via_lane = false;
    if (task.cancelled) {
      Fail(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
    } else if (task.spec.kind == TaskKind::kActorMethod) {
      // The call died with its actor's node: it waits for a restart (max_task_retries) or
      // fails with ActorDiedError as Ray's do.
      if (task.retries_left != 0) {
        if (task.retries_left > 0) --task.retries_left;
        router_->Retry(id);
      } else {
        Fail(id, SystemError(ObjectKind::kActorDied, "the actor's node (index " + std::to_string(node) +
                                                         ") died while it ran " + task.spec.name + " (" + reason +
                                                         "); the call had no retries left (max_task_retries)"));
      }
    } else if (task.retries_left != 0) {
      if (task.retries_left > 0) --task.retries_left;
      QLOG(kInfo) << "retrying task " << task.spec.name << " after node " << node << " died";
      MakeReady(id);
    } else {
      Fail(id, SystemError(ObjectKind::kNodeDied, "the node (index " + std::to_string(node) + ") running task " +
                                                      task.spec.name + " died (" + reason +
                                                      ") and the task has no retries left (max_retries)"));
    }
  }
  // Tasks run here for an owner that is gone: nobody wants their results.
  for (const auto& id : orphaned) {
    if (Unqueue(id)) tasks_->erase(id);
  }
}

void TaskManager::Finish(const TaskID& id, std::vector<ObjectValue> returns) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  Task task = std::move(it->second);
  tasks_->erase(it);
  ReleaseCopies(task);
  // A call whose route kept order waits no more (ActorRouter: one route at a time).
  if (task.spec.kind == TaskKind::kActorMethod && task.forwarded_to != 0) router_->OnCallEnded(task);
  // Else the node that ran it records the end; lane calls skip that node's daemon.
  if (options_.events && (task.forwarded_to == 0 || task.via_lane)) {
    const ObjectValue* error = !returns.empty() && returns[0].IsError() ? &returns[0] : nullptr;
    options_.events->Ended(task, error);
  }
  if (task.is_remote()) {  // its owner seals the returns and holds the pins
    remote_->SendResult(task, std::move(returns));
    return;
  }
  uint32_t stored = 0;  // returns whose bytes live in a store: they can be lost with a node
  for (const auto& v : returns) stored += v.kind == ObjectKind::kStored;
  if (task.spec.kind == TaskKind::kNormal && stored > 0 && lineage_) {
    lineage_->Record(task.spec, task.retries_left, task.spec.num_returns);
  }
  for (uint32_t i = 0; i < returns.size(); ++i) objects_->Seal(task.spec.ReturnId(i), std::move(returns[i]));
  // An actor's constructor arguments stay pinned while it may restart (the actor drops them).
  if (task.spec.kind == TaskKind::kActorCreation) return;
  std::vector<ObjectID> pins = task.spec.arg_refs;
  pins.insert(pins.end(), task.spec.nested_refs.begin(), task.spec.nested_refs.end());
  objects_->Release(pins);
}

void TaskManager::AddToErrorChain(ObjectValue& error, const std::string& task_name) {
  // An application error is a pickle; Python reads past its end the names of the tasks the
  // failure passed on to ('\0' + name each, see serialization.task_error_from_bytes). Other
  // errors are text: the dependent task is named in it.
  if (error.kind == ObjectKind::kTaskError) {
    error.data += '\0';
    error.data += task_name;
  } else {
    error.data += "\n(passed on as an argument to task " + task_name + ")";
  }
}

void TaskManager::Fail(const TaskID& id, const ObjectValue& error) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  if (it->second.spec.kind == TaskKind::kActorCreation && !it->second.is_remote()) {
    actors_->OnCreationFailed(it->second.spec.actor_id, error.data, error.kind);
  }
  std::vector<ObjectValue> returns(it->second.spec.num_returns, error);
  for (auto& v : returns) v.nested_refs.clear();
  Finish(id, std::move(returns));
}

bool TaskManager::Unqueue(const TaskID& id) { return deps_.Forget(id) || dispatcher_->Remove(id); }

void TaskManager::OnTaskDone(const TaskID& id, std::vector<ObjectValue> returns, bool retryable) {
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  Task& task = it->second;
  if (task.timed_out) {
    FinishTimedOut(id);
  } else if (retryable && !task.cancelled && task.retries_left != 0) {
    if (task.retries_left > 0) --task.retries_left;
    QLOG(kInfo) << "retrying task " << task.spec.name << " after it raised (retry_exceptions)";
    MakeReady(id);
  } else {
    Finish(id, std::move(returns));
  }
}

void TaskManager::OnTimedOut(const TaskID& id) {
  auto it = tasks_->find(id);
  if (it == tasks_->end() || it->second.cancelled || it->second.timed_out) return;
  it->second.timed_out = true;
  dispatcher_->Interrupt(it->second, std::chrono::milliseconds(2000));
}

static bool TimeoutRetryable(const protocol::TaskSpec& spec) {
  if (!spec.retry_exceptions) return false;
  if (spec.retry_exception_types.empty()) return true;
  std::string_view types = spec.retry_exception_types;
  for (size_t pos = 0; pos <= types.size();) {
    size_t end = types.find('\n', pos);
    if (end == std::string_view::npos) end = types.size();
    if (types.substr(pos, end - pos) == "quanta.exceptions.TaskTimeoutError") return true;
    pos = end + 1;
  }
  return false;
}

void TaskManager::FinishTimedOut(const TaskID& id) {
  Task& task = tasks_->at(id);
  task.timed_out = false;
  if (!task.cancelled && task.retries_left != 0 && TimeoutRetryable(task.spec)) {
    if (task.retries_left > 0) --task.retries_left;
    QLOG(kInfo) << "retrying task " << task.spec.name << " after it timed out";
    MakeReady(id);
    return;
  }
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%g", task.spec.timeout_ms / 1000.0);
  Fail(id, SystemError(ObjectKind::kTimedOut, "task " + task.spec.name + " ran longer than its timeout_s=" +
                                                  seconds + " and was stopped"));
}

void TaskManager::OnWorkerDied(const TaskID& id, pid_t pid, const Status& why) {
  auto t = tasks_->find(id);
  if (t == tasks_->end()) return;
  Task& task = t->second;
  task.worker = 0;
  if (task.timed_out) {
    FinishTimedOut(id);
  } else if (!task.kill_reason.empty()) {
    Fail(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was stopped: " + task.kill_reason));
  } else if (task.force_cancelled || task.cancelled) {
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
    if (!router_->Cancel(task, msg)) actors_->CancelCall(task, msg);
    return;
  }
  if (Unqueue(id)) {
    Fail(id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
    return;
  }
  if (task.forwarded_to != 0) {
    task.cancelled = true;
    task.retries_left = 0;
    if (cancel_remote) cancel_remote(task.forwarded_to, msg);
    return;
  }
  dispatcher_->CancelSent(task, msg);
}

void TaskManager::OnCancelFromOwner(uint32_t from, const protocol::CancelTask& msg) {
  auto it = tasks_->find(msg.object_id.TaskId());
  if (it == tasks_->end() || it->second.owner != from) return;
  OnCancel(msg);
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
      protocol::CancelTask c{task.spec.ReturnId(0), false, false};
      if (!router_->Cancel(task, c)) actors_->CancelCall(task, c);
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
