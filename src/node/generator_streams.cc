#include "node/generator_streams.h"

#include <algorithm>

namespace quanta {

using protocol::ObjectKind;

GeneratorStreams::GeneratorStreams(TaskTable* tasks, ObjectManager* objects, Callbacks callbacks)
    : tasks_(tasks), objects_(objects), callbacks_(std::move(callbacks)) {}

Status GeneratorStreams::OnWorkerItem(uint64_t worker, protocol::GeneratorItem msg) {
  auto it = tasks_->find(msg.task_id);
  if (it == tasks_->end() || it->second.worker != worker) {
    return Status::ProtocolError("GeneratorItem for a task that is not running on this worker");
  }
  Task& task = it->second;
  if (!task.is_streaming()) return Status::ProtocolError("GeneratorItem for a task that is not a streaming generator");
  ObjectID id = task.spec.ItemId(msg.index);
  QUANTA_RETURN_IF_ERROR(objects_->AcceptStoredValue(worker, id, msg.value));
  msg.handoff = 0;
  if (task.generator_told != worker && task.generator_consumed > 0) TellProducer(task);  // a new attempt
  if (msg.index > task.generator_items) return Status::ProtocolError("generator items out of order");
  if (msg.index < task.generator_items) {  // a re-run yields what we have already
    if (msg.value.kind == ObjectKind::kStored) objects_->DiscardCopy(id);
    return Status::Ok();
  }
  if (!task.is_remote()) {
    Seal(task, std::move(msg));
    return Status::Ok();
  }
  ++task.generator_items;
  if (msg.value.kind == ObjectKind::kStored) objects_->KeepForOwner(id);
  std::vector<ObjectID> held;  // the refs inside stay alive until the owner holds them
  for (const auto& ref : msg.value.nested_refs) {
    if (ObjectDirectory::OwnerOf(ref) != task.owner && objects_->Pin(ref)) held.push_back(ref);
  }
  if (!held.empty()) msg.handoff = callbacks_.hold_for_owner(task.owner, std::move(held));
  callbacks_.item_to_owner(task.owner, std::move(msg));
  return Status::Ok();
}

Status GeneratorStreams::OnRemoteItem(uint32_t from, protocol::GeneratorItem msg) {
  uint64_t handoff = msg.handoff;
  auto answer = [&] {
    if (handoff != 0) callbacks_.handoff_done(from, handoff);
  };
  auto it = tasks_->find(msg.task_id);
  if (it == tasks_->end() || it->second.forwarded_to != from) {  // finished or moved meanwhile
    if (msg.value.kind == ObjectKind::kStored) callbacks_.free_copy(from, msg.task_id.ReturnId(static_cast<uint32_t>(msg.index + 1)));
    answer();
    return Status::Ok();
  }
  Task& task = it->second;
  if (!task.is_streaming()) return Status::ProtocolError("GeneratorItemRemote for a task that is not a streaming generator");
  if (task.generator_told != (Task::kToNode | from) && task.generator_consumed > 0) TellProducer(task);
  ObjectID id = task.spec.ItemId(msg.index);
  if (msg.index > task.generator_items) return Status::ProtocolError("generator items out of order");
  if (msg.index < task.generator_items) {
    if (msg.value.kind == ObjectKind::kStored) callbacks_.free_copy(from, id);
    answer();
    return Status::Ok();
  }
  if (msg.value.kind == ObjectKind::kStored) callbacks_.set_primary(id, from);
  Seal(task, std::move(msg));
  answer();
  return Status::Ok();
}

void GeneratorStreams::Seal(Task& task, protocol::GeneratorItem msg) {
  ObjectID id = task.spec.ItemId(msg.index);
  ++task.generator_items;
  if (task.submitter == 0 || !callbacks_.client_alive(task.submitter)) {
    if (msg.value.kind == ObjectKind::kStored) objects_->DiscardCopy(id);
    return;  // nobody to hand it to
  }
  objects_->AddReturnHolder(task.submitter, id);
  objects_->Seal(id, std::move(msg.value));
  ++sealed_;
}

void GeneratorStreams::OnAck(uint64_t client, const protocol::GeneratorAck& msg) {
  auto it = tasks_->find(msg.task_id);
  if (it == tasks_->end() || it->second.submitter != client || !it->second.is_streaming() || it->second.is_remote()) return;
  Task& task = it->second;
  task.generator_consumed = std::max(task.generator_consumed, msg.consumed);
  TellProducer(task);
}

void GeneratorStreams::OnRemoteAck(uint32_t from, const protocol::GeneratorAck& msg) {
  auto it = tasks_->find(msg.task_id);
  if (it == tasks_->end() || it->second.owner != from || !it->second.is_streaming()) return;
  Task& task = it->second;
  task.generator_consumed = std::max(task.generator_consumed, msg.consumed);
  TellProducer(task);
}

void GeneratorStreams::TellProducer(Task& task) {
  protocol::GeneratorAck ack{task.spec.task_id, task.generator_consumed};
  if (task.forwarded_to != 0) {
    task.generator_told = Task::kToNode | task.forwarded_to;
    callbacks_.ack_to_node(task.forwarded_to, ack);
  } else if (task.worker != 0) {
    task.generator_told = task.worker;
    callbacks_.to_worker(task.worker, ack);
  }
}

}  // namespace quanta
