#include "node/remote_tasks.h"

#include "common/logging.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;

RemoteTasks::RemoteTasks(TaskTable* tasks, ObjectManager* objects, ObjectDirectory* directory, PeerManager* peers,
                         FunctionTable* functions, const ClusterView* view, Callbacks callbacks)
    : tasks_(tasks),
      objects_(objects),
      directory_(directory),
      peers_(peers),
      functions_(functions),
      view_(view),
      callbacks_(std::move(callbacks)) {}

bool RemoteTasks::Forward(Task& task, uint32_t node) {
  protocol::ForwardTask msg;
  msg.args.reserve(task.spec.arg_refs.size());
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_->Find(arg);
    if (e == nullptr || !e->sealed) return false;
    std::vector<uint32_t> locations;
    if (e->value.kind == ObjectKind::kStored) {
      // The executing node pulls the bytes from one of these.
      if (objects_->HasLocalCopy(arg)) locations.push_back(view_->local_index());
      for (uint32_t n : directory_->LocationsOf(arg)) locations.push_back(n);
      if (locations.empty()) return false;
    }
    msg.args.push_back(objects_->ValueForPeer(arg));
    msg.arg_locations.push_back(std::move(locations));
  }
  msg.spec = task.spec;
  if (!task.spec.function_id.empty() && functions_sent_[node].insert(task.spec.function_id).second) {
    if (const std::string* payload = functions_->Find(task.spec.function_id)) msg.function_payload = *payload;
  }
  task.forwarded_to = node;
  ++forwarded_;
  peers_->Send(node, MessageType::kForwardTask, msg);
  return true;
}

Status RemoteTasks::OnForwardTask(uint32_t from, protocol::ForwardTask msg) {
  const TaskID id = msg.spec.task_id;
  if (msg.spec.task_id.Creator() >> 32 != from) {
    return Status::ProtocolError("ForwardTask for a task its sender does not own");
  }
  if (tasks_->count(id)) {
    QLOG(kWarning) << "duplicate forwarded task " << id.Hex() << " ignored";
    return Status::Ok();
  }
  if (!msg.function_payload.empty()) functions_->Add(msg.spec.function_id, std::move(msg.function_payload));
  Task& task = (*tasks_)[id];
  task.owner = from;
  task.retries_left = msg.spec.max_retries;
  task.remote_args = std::move(msg.args);
  task.spec = std::move(msg.spec);
  ++executed_;
  // An actor call takes its place in its actor's FIFO now, in arrival order; it is sent to the
  // actor's worker once its arguments are here.
  if (task.spec.kind == protocol::TaskKind::kActorCreation) callbacks_.actor_creation(id);
  if (task.spec.kind == protocol::TaskKind::kActorMethod && !callbacks_.actor_call(id)) return Status::Ok();
  // What must be here first: stored arguments (pulled, then held until the task ends) and the
  // function's definition (fetched from the control service if it did not come along).
  std::vector<size_t> stored;
  for (size_t i = 0; i < task.remote_args.size(); ++i) {
    if (task.remote_args[i].kind == ObjectKind::kStored) stored.push_back(i);
  }
  bool need_function = !task.spec.function_id.empty() && functions_->Find(task.spec.function_id) == nullptr;
  task.fetching = static_cast<int>(stored.size()) + (need_function ? 1 : 0);
  if (task.fetching == 0) {
    Arrived(id);
    return Status::Ok();
  }
  auto fail = [this, id](const std::string& why, ObjectKind kind = ObjectKind::kObjectLost) {
    auto it = tasks_->find(id);
    if (it == tasks_->end() || it->second.fetching == 0) return;
    it->second.fetching = 0;
    callbacks_.finish(id, std::vector<protocol::ObjectValue>(it->second.spec.num_returns, SystemError(kind, why)));
  };
  auto one_more = [this, id] {
    auto it = tasks_->find(id);
    if (it != tasks_->end() && it->second.fetching > 0 && --it->second.fetching == 0) Arrived(id);
  };
  if (need_function) {
    std::string fid = task.spec.function_id;
    callbacks_.fetch_function(fid, [this, fid, fail, one_more](const std::string* payload) {
      if (payload == nullptr) {
        fail("the definition of the task's function is not registered with the control service");
        return;
      }
      functions_->Add(fid, *payload);
      one_more();
    });
  }
  for (size_t i : stored) {
    ObjectID arg = task.spec.arg_refs[i];
    auto loc = protocol::StoredLocation::Decode(task.remote_args[i].data);
    uint64_t size = loc.ok() ? loc->size : 0;
    objects_->FetchCopy(arg, size, msg.arg_locations[i], [this, id, arg, fail, one_more](const Status& st) {
      if (!st.ok()) {
        if (st.code() == StatusCode::kNotFound) args_lost_.insert(id);  // its owner may rebuild it
        // No room in this node's store is ObjectStoreFullError, as on the owner's own node.
        fail("argument object " + arg.Hex() + " could not be brought to node " + std::to_string(view_->local_index()) +
                 ": " + st.message(),
             st.code() == StatusCode::kResourceExhausted ? ObjectKind::kStoreFull : ObjectKind::kObjectLost);
        return;
      }
      objects_->PinCopyFor(SharedStore::kNodePin, arg);  // held until the task ends
      one_more();
    });
  }
  return Status::Ok();
}

void RemoteTasks::Arrived(const TaskID& id) {
  Task& task = tasks_->at(id);
  task.deps_ready = true;
  if (task.spec.kind == protocol::TaskKind::kActorMethod) {
    callbacks_.pump_actor(task.spec.actor_id);
    return;
  }
  callbacks_.enqueue_local(id, ResourceSet(task.spec.resources));
}

void RemoteTasks::SendResult(const Task& task, std::vector<protocol::ObjectValue> returns) {
  // The arguments pulled for it may be evicted again (an actor's constructor arguments stay
  // while it may restart: the ActorManager lets them go).
  SharedStore* store = objects_->store();
  if (store != nullptr && task.spec.kind != protocol::TaskKind::kActorCreation) {
    for (size_t i = 0; i < task.remote_args.size(); ++i) {
      if (task.remote_args[i].kind == ObjectKind::kStored) store->Unpin(task.spec.arg_refs[i], SharedStore::kNodePin, 1);
    }
  }
  protocol::TaskResult msg;
  msg.task_id = task.spec.task_id;
  if (const protocol::NodeInfo* self = view_->Find(view_->local_index())) msg.incarnation = self->incarnation;
  // Rule 3: the refs inside the returns stay held here until the owner holds them.
  std::vector<ObjectID> held;
  for (uint32_t i = 0; i < returns.size(); ++i) {
    if (returns[i].kind == ObjectKind::kStored) objects_->KeepForOwner(task.spec.ReturnId(i));
    for (const auto& ref : returns[i].nested_refs) {
      if (ObjectDirectory::OwnerOf(ref) != task.owner && objects_->Pin(ref)) held.push_back(ref);
    }
  }
  if (!held.empty()) {
    msg.handoff = next_handoff_++;
    handoffs_[msg.handoff] = {task.owner, std::move(held)};
  }
  msg.returns = std::move(returns);
  msg.args_lost = args_lost_.erase(task.spec.task_id) > 0;
  uint32_t owner = task.owner;
  if (!view_->IsAlive(owner)) {  // its owner died: nobody to tell
    if (msg.handoff != 0) OnHandOffDone(owner, msg.handoff);
    return;
  }
  // Rule 2: the owner releases the task's argument pins when it gets this.
  directory_->DeferRelease([this, owner, msg = std::move(msg)] { peers_->Send(owner, MessageType::kTaskResult, msg); });
}

void RemoteTasks::OnHandOffDone(uint32_t from, uint64_t handoff) {
  auto it = handoffs_.find(handoff);
  if (it == handoffs_.end() || it->second.first != from) return;
  std::vector<ObjectID> held = std::move(it->second.second);
  handoffs_.erase(it);
  objects_->Release(held);
}

Status RemoteTasks::OnTaskResult(uint32_t from, protocol::TaskResult msg) {
  auto it = tasks_->find(msg.task_id);
  if (it == tasks_->end() || it->second.forwarded_to != from) {
    // Finished or failed over already (a result from a node declared dead arrives late).
    QLOG(kInfo) << "ignoring a result from node " << from << " for task " << msg.task_id.Hex()
                << " it is not running";
    return Status::Ok();
  }
  if (msg.returns.size() != it->second.spec.num_returns) {
    return Status::ProtocolError("TaskResult with the wrong number of returns");
  }
  for (uint32_t i = 0; i < msg.returns.size(); ++i) {
    if (msg.returns[i].kind == ObjectKind::kStored) directory_->SetPrimary(msg.task_id.ReturnId(i), from);
  }
  uint64_t handoff = msg.handoff;
  if (msg.args_lost) {
    callbacks_.args_lost(msg.task_id, std::move(msg.returns));
  } else {
    callbacks_.finish(msg.task_id, std::move(msg.returns));
  }
  if (handoff != 0) {
    // Sealing registered our borrows of the refs inside; once they are acknowledged the
    // executing node may let go of them.
    directory_->DeferRelease([this, from, handoff] {
      peers_->Send(from, MessageType::kHandOffDone, protocol::HandOff{handoff});
    });
  }
  return Status::Ok();
}

}  // namespace quanta
