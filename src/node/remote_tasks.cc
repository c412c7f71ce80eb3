#include "node/remote_tasks.h"

#include "common/logging.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;

RemoteTasks::RemoteTasks(TaskTable* tasks, ObjectManager* objects, PeerManager* peers, FunctionTable* functions,
                         const ClusterView* view, Callbacks callbacks)
    : tasks_(tasks),
      objects_(objects),
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
    if (e->value.kind == ObjectKind::kStored) return false;  // shared-memory values need a transfer
    msg.args.push_back(e->value);
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
  if (msg.spec.kind != protocol::TaskKind::kNormal) {
    return Status::ProtocolError("only plain tasks are forwarded");
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
  task.deps_ready = true;
  task.spec = std::move(msg.spec);
  ++executed_;
  callbacks_.enqueue_local(id, ResourceSet(task.spec.resources));
  return Status::Ok();
}

void RemoteTasks::SendResult(const Task& task, std::vector<protocol::ObjectValue> returns) {
  protocol::TaskResult msg;
  msg.task_id = task.spec.task_id;
  if (const protocol::NodeInfo* self = view_->Find(view_->local_index())) msg.incarnation = self->incarnation;
  msg.returns = std::move(returns);
  peers_->Send(task.owner, MessageType::kTaskResult, msg);
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
  for (const auto& v : msg.returns) {
    if (v.kind == ObjectKind::kStored) return Status::ProtocolError("stored returns need a transfer");
  }
  callbacks_.finish(msg.task_id, std::move(msg.returns));
  return Status::Ok();
}

}  // namespace quanta
