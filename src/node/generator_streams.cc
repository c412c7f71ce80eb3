#include "node/generator_streams.h"

#include <algorithm>

#include "node/client_registry.h"
#include "node/cluster_view.h"
#include "node/peer_manager.h"
#include "node/remote_tasks.h"

namespace quanta {

using protocol::MessageType;
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

Status GeneratorStreams::OnClientFrame(uint64_t client, bool is_worker, const protocol::Frame& frame) {
  if (static_cast<MessageType>(frame.type) == MessageType::kGeneratorAck) {
    protocol::GeneratorAck m;
    QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
    OnAck(client, m);
    return Status::Ok();
  }
  if (!is_worker) return Status::ProtocolError("GeneratorItem from a non-worker");
  protocol::GeneratorItem m;
  QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
  return OnWorkerItem(client, std::move(m));
}

Status GeneratorStreams::OnPeerFrame(uint32_t from, const protocol::Frame& frame) {
  if (static_cast<MessageType>(frame.type) == MessageType::kGeneratorAckRemote) {
    protocol::GeneratorAck m;
    QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
    OnRemoteAck(from, m);
    return Status::Ok();
  }
  protocol::GeneratorItem m;
  QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
  return OnRemoteItem(from, std::move(m));
}

std::unique_ptr<GeneratorStreams> MakeGeneratorStreams(TaskTable* tasks, ObjectManager* objects,
                                                       ClientRegistry* clients, PeerManager* peers,
                                                       ObjectDirectory* directory, RemoteTasks* remote,
                                                       const ClusterView* view) {
  GeneratorStreams::Callbacks cb;
  cb.client_alive = [clients](uint64_t client) { return clients->Find(client) != nullptr; };
  cb.to_worker = [clients](uint64_t client, const protocol::GeneratorAck& ack) {
    if (LocalClient* c = clients->Find(client)) c->conn->Send(MessageType::kGeneratorAck, ack);
  };
  cb.ack_to_node = [peers](uint32_t node, const protocol::GeneratorAck& ack) {
    peers->Send(node, MessageType::kGeneratorAckRemote, ack);
  };
  cb.item_to_owner = [peers, directory, view](uint32_t owner, protocol::GeneratorItem item) {
    // After this node's borrow registrations are acknowledged (rule 2), in order with results.
    directory->DeferRelease([peers, view, owner, item = std::move(item)] {
      if (view->IsAlive(owner)) peers->Send(owner, MessageType::kGeneratorItemRemote, item);
    });
  };
  cb.hold_for_owner = [remote](uint32_t owner, std::vector<ObjectID> refs) {
    return remote->HoldForOwner(owner, std::move(refs));
  };
  cb.handoff_done = [peers, directory](uint32_t node, uint64_t handoff) {
    directory->DeferRelease([peers, node, handoff] {
      peers->Send(node, MessageType::kHandOffDone, protocol::HandOff{handoff});
    });
  };
  cb.set_primary = [directory](const ObjectID& id, uint32_t node) { directory->SetPrimary(id, node); };
  cb.free_copy = [peers](uint32_t node, const ObjectID& id) {
    peers->Send(node, MessageType::kFreeObject, protocol::IdList{{id}});
  };
  return std::make_unique<GeneratorStreams>(tasks, objects, std::move(cb));
}

}  // namespace quanta
