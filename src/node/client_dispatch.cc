#include "node/client_dispatch.h"

#include <fstream>
#include <iterator>

#include "node/actor_manager.h"
#include "node/actor_router.h"
#include "node/control_client.h"
#include "node/control_forwarder.h"
#include "node/generator_streams.h"
#include "node/object_manager.h"
#include "node/state_service.h"
#include "node/task_manager.h"
#include "node/worker_dispatcher.h"

namespace quanta {

using protocol::MessageType;

namespace {
// The command line of a local process (its entrypoint, for the job table), or "".
std::string CommandLineOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : data) {
    if (c == '\0') c = ' ';
  }
  while (!data.empty() && data.back() == ' ') data.pop_back();
  return data.substr(0, 4096);
}

// Frames a client may send once it has said Hello (a task with its arguments, a put): the
// protocol's maximum. Larger values travel through the shared-memory store.
constexpr uint32_t kMaxClientFrame = protocol::kMaxFrameBody;
}  // namespace

Status ClientDispatch::OnHello(LocalClient& client, const protocol::Hello& hello) {
  if (client.said_hello) return Status::ProtocolError("duplicate Hello");
  client.role = hello.role;
  client.log_to_driver = hello.log_to_driver;
  if (hello.role == protocol::ClientRole::kWorker) {
    QUANTA_RETURN_IF_ERROR(c_.dispatcher->OnWorkerHello(client, hello.worker_token));
  }
  client.said_hello = true;
  client.conn->SetMaxFrameBody(kMaxClientFrame);
  if (client.is_driver()) {
    protocol::JobInfo job;
    job.job_id = client.id;
    job.driver_pid = static_cast<uint32_t>(client.pid);
    job.entrypoint = CommandLineOf(client.pid);
    c_.control->Send(MessageType::kJobStarted, job);
  }
  protocol::HelloReply reply;
  reply.client_id = client.id;
  reply.node_id = identity_.node_id;
  reply.session_dir = identity_.session_dir;
  if (SharedStore* store = c_.objects->store()) {
    reply.store_path = store->memory().path();
    reply.store_size = store->memory().size();
  }
  reply.inline_threshold = identity_.inline_threshold;
  reply.cluster_id = c_.control ? c_.control->cluster_id() : 0;
  client.conn->Send(MessageType::kHelloReply, reply);
  return Status::Ok();
}

bool ClientDispatch::ObserverMay(MessageType type) {
  switch (type) {
    case MessageType::kGetClusterInfo:
    case MessageType::kGetStoreStats:
    case MessageType::kGetNodeStats:
    case MessageType::kGetPlacementGroups:
    case MessageType::kGetNodeState:
    case MessageType::kControlRequest:  // read-only ops only (checked with the request)
      return true;
    default:
      return false;
  }
}

Status ClientDispatch::Dispatch(LocalClient& client, const protocol::Frame& frame) {
  auto type = static_cast<MessageType>(frame.type);
  if (!client.said_hello && type != MessageType::kHello) return Status::ProtocolError("first message must be Hello");
  if (client.said_hello && client.role == protocol::ClientRole::kObserver && !ObserverMay(type)) {
    return Status::ProtocolError(std::string("an observer may only read the cluster's state, not send ") +
                                 protocol::MessageTypeName(type));
  }
  Worker* worker = client.is_worker() ? c_.dispatcher->Find(client.id) : nullptr;
  switch (type) {
    case MessageType::kHello: {
      protocol::Hello m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return OnHello(client, m);
    }
    case MessageType::kRegisterFunction: {
      protocol::RegisterFunction m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (c_.functions->Find(m.function_id) == nullptr) {
        c_.control->RegisterFunction(m.function_id, m.payload);
        c_.functions->Add(std::move(m.function_id), std::move(m.payload));
      }
      return Status::Ok();
    }
    case MessageType::kSubmitTask: {
      protocol::TaskSpec m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (m.task_id.Creator() != client.id) return Status::ProtocolError("task id was not minted by this client");
      c_.task_manager->OnSubmit(client, std::move(m));
      return Status::Ok();
    }
    case MessageType::kPutObject: {
      protocol::PutObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return c_.objects->OnPut(client, std::move(m));
    }
    case MessageType::kCreateObject: {
      protocol::CreateObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.objects->OnCreateObject(client, m);
      return Status::Ok();
    }
    case MessageType::kSubscribePinned:
    case MessageType::kSubscribe: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (type == MessageType::kSubscribe) {
        c_.objects->OnSubscribe(client, m.ids);
      } else {
        c_.objects->OnSubscribePinned(client, m.ids);
      }
      return Status::Ok();
    }
    case MessageType::kPinDeltas:
    case MessageType::kRefDeltas: {
      protocol::RefDeltas m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (type == MessageType::kRefDeltas) {
        c_.objects->OnRefDeltas(client.id, m);
      } else {
        c_.objects->OnPinDeltas(client, m);
      }
      return Status::Ok();
    }
    case MessageType::kCreatePlacementGroup:
    case MessageType::kRemovePlacementGroup:
    case MessageType::kGetPlacementGroups:
      return c_.forwarder->OnPlacementGroupRequest(client, type, frame);
    case MessageType::kFetchObjects: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.objects->OnFetch(client, m.ids);
      return Status::Ok();
    }
    case MessageType::kGetStoreStats: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.objects->OnGetStoreStats(client, m);
      return Status::Ok();
    }
    case MessageType::kWorkerBlocked:
    case MessageType::kWorkerUnblocked:
      if (worker == nullptr) return Status::ProtocolError("only workers block");
      if (type == MessageType::kWorkerBlocked) {
        c_.dispatcher->OnBlocked(*worker);
      } else {
        c_.dispatcher->OnUnblocked(*worker);
      }
      return Status::Ok();
    case MessageType::kLaneAdopt: {
      if (worker == nullptr || !c_.lane_adopt) return Status::ProtocolError("LaneAdopt from a non-worker");
      protocol::LaneAdopt m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return c_.lane_adopt(client, std::move(m));
    }
    case MessageType::kTaskDone: {
      if (worker == nullptr) return Status::ProtocolError("TaskDone from a non-worker");
      protocol::TaskDone m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      auto task = c_.tasks->find(m.task_id);
      if (task != c_.tasks->end() && task->second.worker != client.id) {
        return Status::ProtocolError("TaskDone for a task that was not sent to this worker");
      }
      for (uint32_t i = 0; i < m.returns.size(); ++i) {
        QUANTA_RETURN_IF_ERROR(c_.objects->AcceptStoredValue(client.id, m.task_id.ReturnId(i), m.returns[i]));
      }
      if (!m.error.empty() && task != c_.tasks->end()) task->second.error_text = std::move(m.error);
      if (worker->is_actor()) {
        c_.actors->OnTaskDone(*worker, std::move(m));
        return Status::Ok();
      }
      return c_.dispatcher->OnTaskDone(*worker, std::move(m));
    }
    case MessageType::kGeneratorItem:
    case MessageType::kGeneratorAck:
      return c_.generators->OnClientFrame(client.id, worker != nullptr, frame);
    case MessageType::kTasksReturned: {
      if (worker == nullptr) return Status::ProtocolError("TasksReturned from a non-worker");
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.dispatcher->OnTasksReturned(*worker, m.ids);
      return Status::Ok();
    }
    case MessageType::kCancelTask: {
      protocol::CancelTask m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.task_manager->OnCancel(m);
      return Status::Ok();
    }
    case MessageType::kKillActor: {
      protocol::KillActor m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (c_.actors->Hosts(m.actor_id)) {
        c_.actors->Kill(m.actor_id, m.no_restart);
      } else {
        c_.router->Kill(m.actor_id, m.no_restart, "the actor was killed with quanta.kill()");
      }
      return Status::Ok();
    }
    case MessageType::kActorName: {
      protocol::ActorName m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.forwarder->OnActorName(client, m);
      if (c_.after_control_request) c_.after_control_request();
      return Status::Ok();
    }
    case MessageType::kControlRequest: {
      protocol::ControlRequest m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (client.role == protocol::ClientRole::kObserver && !protocol::IsReadOnly(m.op)) {
        return Status::ProtocolError("an observer may only read the control service's tables");
      }
      c_.forwarder->OnRequest(client, std::move(m));
      if (c_.after_control_request) c_.after_control_request();
      return Status::Ok();
    }
    case MessageType::kGetNodeState: {
      protocol::NodeStateQuery m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.state->OnClientQuery(client.id, m);
      return Status::Ok();
    }
    case MessageType::kGetNodeStats: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      client.conn->Send(MessageType::kNodeStats, node_stats_(m.request_id));
      return Status::Ok();
    }
    case MessageType::kGetClusterInfo: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      protocol::ClusterInfo reply;
      reply.request_id = m.request_id;
      reply.nodes = cluster_snapshot_();
      client.conn->Send(MessageType::kClusterInfo, reply);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type));
  }
}

}  // namespace quanta
