#include "node/node_server.h"

#include <unistd.h>

#include "common/logging.h"
#include "common/random.h"
#include "net/daemon.h"

#include <cstdio>

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;

namespace {
// Frames a client may send once it has said Hello (a task with its arguments, a put): the
// protocol's maximum. Larger values travel through the shared-memory store.
constexpr uint32_t kMaxClientFrame = protocol::kMaxFrameBody;
}  // namespace

NodeServer::NodeServer(net::EventLoop* loop, NodeOptions options)
    : loop_(loop),
      options_(std::move(options)),
      node_id_(RandomHex(16)),
      clients_(
          loop, 0,
          [this](LocalClient& c, const protocol::Frame& f) { OnClientMessage(c, f); },
          [this](const LocalClient& c, const Status& why) { OnClientClosed(c, why); }),
      pool_(loop,
            WorkerPool::Options{options_.python, options_.socket_path, options_.session_dir + "/logs",
                                options_.worker_env},
            [this](const std::string& token, bool is_err, std::string text) {
              OnWorkerOutput(token, is_err, std::move(text));
            },
            [this](const std::string& token, int status, const std::string& err_log) {
              if (dispatcher_) dispatcher_->OnProcessExit(token, status, err_log);
            }),
      logs_(&clients_, LogForwarder::Limits{}),
      view_([](const protocol::NodeInfo& n) { QLOG(kInfo) << "node " << n.node_index << " joined at " << n.address; },
            [](const protocol::NodeInfo& n) {
              QLOG(kWarning) << "node " << n.node_index << " is dead: " << n.death_reason;
            }),
      start_time_ms_(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count())) {}

Status NodeServer::Start() {
  QUANTA_RETURN_IF_ERROR(pool_.Init());
  std::unique_ptr<SharedStore> store;
  if (options_.store_capacity > 0) {
    auto memory = SharedMemory::Create("quanta-object-store", options_.store_capacity);
    if (!memory.ok()) return memory.status();
    std::string spill = options_.spill_dir.empty() ? options_.session_dir + "/spill" : options_.spill_dir;
    store = std::make_unique<SharedStore>(std::move(memory).value(), spill);
  }
  objects_ = std::make_unique<ObjectManager>(
      &clients_, std::move(store),
      ObjectManager::Callbacks{
          [this](const ObjectID& id) { task_manager_->OnObjectSealed(id); },
          [this](const std::vector<ObjectID>& freed) { actors_->OnObjectsFreed(freed); },
          [this](uint64_t client, const ObjectID& id) { return MayWrite(client, id); }});
  dispatcher_ = std::make_unique<WorkerDispatcher>(
      loop_, WorkerDispatcher::Options{options_.prestart_workers, options_.session_dir + "/logs"},
      options_.resources, &pool_, &tasks_, objects_.get(), &clients_,
      WorkerDispatcher::Callbacks{
          [this](const TaskID& id, std::vector<protocol::ObjectValue> returns) {
            task_manager_->Finish(id, std::move(returns));
          },
          [this](const TaskID& id, pid_t pid, const Status& why) { task_manager_->OnWorkerDied(id, pid, why); },
          [this](const Worker& w, const Status& why) { actors_->OnWorkerLost(w, why); },
          [this](const ObjectID& actor, Worker& w) { actors_->OnPlaced(actor, w); },
          [this](const std::string& fid) { return functions_.Find(fid); }});
  actors_ = std::make_unique<ActorManager>(
      &tasks_, dispatcher_.get(), objects_.get(),
      ActorManager::Callbacks{
          [this](const TaskID& id, std::vector<protocol::ObjectValue> r) { task_manager_->Finish(id, std::move(r)); },
          [this](const TaskID& id, const protocol::ObjectValue& e) { task_manager_->Fail(id, e); },
          [this](const TaskID& id) { task_manager_->MakeReady(id); },
          [this](const TaskID& id) { return task_manager_->Unqueue(id); }});
  task_manager_ = std::make_unique<TaskManager>(&tasks_, objects_.get(), dispatcher_.get(), actors_.get());

  if (options_.control_socket_path.empty()) {
    auto token = net::ClusterToken::Load();
    if (!token.ok()) return token.status();
    token_ = std::make_unique<net::ClusterToken>(std::move(token).value());
  }
  control_ = std::make_unique<ControlClient>(
      loop_,
      ControlClient::Options{options_.control_socket_path, options_.control_host, options_.control_port,
                             options_.join_timeout},
      token_.get(), &view_, &functions_,
      ControlClient::Callbacks{
          [this] { return LocalNodeInfo(); },
          [this](const protocol::RegisterNodeReply& reply) { OnJoined(reply); },
          [this](const std::string& why) {
            QLOG(kError) << why;
            std::fprintf(stderr, "quanta_node: %s\n", why.c_str());
            exit_code_ = 3;
            Shutdown(why);
          },
          [this](const std::string& why) {
            QLOG(kError) << why;
            exit_code_ = 4;
            Shutdown(why);
          }});
  if (options_.lifeline_fd >= 0) {
    QUANTA_RETURN_IF_ERROR(loop_->Add(options_.lifeline_fd, EPOLLIN | EPOLLHUP, [this](uint32_t) {
      char buf[64];
      if (::read(options_.lifeline_fd, buf, sizeof buf) <= 0) Shutdown("the driver that started the cluster exited");
    }));
  }
  control_->Start();
  return Status::Ok();
}

void NodeServer::OnJoined(const protocol::RegisterNodeReply& reply) {
  // Ids minted by this node's clients carry its index (docs/cluster-design.md §3).
  clients_.SetFirstClientId((static_cast<uint64_t>(reply.node_index) << 32) | 1);
  Status st = clients_.Listen(options_.socket_path);
  if (!st.ok()) {
    std::fprintf(stderr, "quanta_node: %s\n", st.message().c_str());
    exit_code_ = 3;
    Shutdown(st.message());
    return;
  }
  dispatcher_->Start();
  loop_->AtEndOfIteration([this] {
    dispatcher_->Schedule();
    control_->ReportResources(dispatcher_->queue().available().ToMap());
    logs_.SendPendingNotes();
  });
  QLOG(kInfo) << "node " << node_id_ << " joined the cluster at " << control_->address() << " as node index "
              << reply.node_index << "; listening on " << options_.socket_path << " with resources "
              << options_.resources.ToString();
  net::SignalReady(options_.ready_fd, std::to_string(reply.node_index) + " " + node_id_);
  options_.ready_fd = -1;
}

void NodeServer::Shutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  QLOG(kInfo) << "shutting down: " << why;
  if (dispatcher_) dispatcher_->Shutdown();
  if (control_) control_->Shutdown();
  pool_.KillAll();
  clients_.StopListening();
  loop_->Stop();
}

protocol::NodeInfo NodeServer::LocalNodeInfo() const {
  protocol::NodeInfo info;
  info.node_id = node_id_;
  info.node_index = view_.local_index();
  info.address = options_.node_ip;
  info.socket_path = options_.socket_path;
  info.session_dir = options_.session_dir;
  info.alive = true;
  info.total = options_.resources.ToMap();
  info.available = dispatcher_ ? dispatcher_->queue().available().ToMap() : info.total;
  info.labels = options_.labels;
  info.start_time_ms = start_time_ms_;
  info.flags = options_.flags;
  if (const protocol::NodeInfo* known = view_.Find(info.node_index)) info.incarnation = known->incarnation;
  return info;
}

bool NodeServer::MayWrite(uint64_t client, const ObjectID& id) const {
  if (id.Index() == ObjectID::kPutIndex) return id.Creator() == client;
  auto it = tasks_.find(id.TaskId());
  return it != tasks_.end() && it->second.worker == client && id.Index() >= 1 &&
         id.Index() <= it->second.spec.num_returns;
}

void NodeServer::OnWorkerOutput(const std::string& token, bool is_stderr, std::string text) {
  Worker* worker = dispatcher_ ? dispatcher_->FindByToken(token) : nullptr;
  if (worker == nullptr || worker->last_job == 0) return;
  logs_.Forward(worker->last_job, static_cast<uint32_t>(worker->pid), worker->last_task_name, is_stderr,
                std::move(text));
}

void NodeServer::OnClientMessage(LocalClient& client, const protocol::Frame& frame) {
  Status st = Dispatch(client, frame);
  if (!st.ok()) {
    QLOG(kWarning) << "rejecting " << protocol::MessageTypeName(MessageType(frame.type)) << " from client pid="
                   << client.pid << ": " << st.ToString();
    client.conn->Close(st);
  }
}

Status NodeServer::OnHello(LocalClient& client, const protocol::Hello& hello) {
  if (client.said_hello) return Status::ProtocolError("duplicate Hello");
  client.role = hello.role;
  client.log_to_driver = hello.log_to_driver;
  if (hello.role == protocol::ClientRole::kWorker) {
    QUANTA_RETURN_IF_ERROR(dispatcher_->OnWorkerHello(client, hello.worker_token));
  }
  client.said_hello = true;
  client.conn->SetMaxFrameBody(kMaxClientFrame);
  protocol::HelloReply reply;
  reply.client_id = client.id;
  reply.node_id = node_id_;
  reply.session_dir = options_.session_dir;
  if (SharedStore* store = objects_->store()) {
    reply.store_path = store->memory().path();
    reply.store_size = store->memory().size();
  }
  reply.inline_threshold = options_.inline_threshold;
  client.conn->Send(MessageType::kHelloReply, reply);
  return Status::Ok();
}

void NodeServer::OnClientClosed(const LocalClient& client, const Status& why) {
  if (client.is_worker()) dispatcher_->OnWorkerClosed(client, why);
  // As in Ray: a driver's work ends with it (its detached actors and others' work go on).
  if (client.is_driver() && !shutting_down_) {
    task_manager_->OnJobEnded(client.id, "its driver (pid " + std::to_string(client.pid) + ") exited");
  }
  logs_.Forget(client.id);
  objects_->DropClient(client.id);
  QLOG(kInfo) << "client pid=" << client.pid << " disconnected: " << why.message();
}

Status NodeServer::Dispatch(LocalClient& client, const protocol::Frame& frame) {
  auto type = static_cast<MessageType>(frame.type);
  if (!client.said_hello && type != MessageType::kHello) return Status::ProtocolError("first message must be Hello");
  Worker* worker = client.is_worker() ? dispatcher_->Find(client.id) : nullptr;
  switch (type) {
    case MessageType::kHello: {
      protocol::Hello m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return OnHello(client, m);
    }
    case MessageType::kRegisterFunction: {
      protocol::RegisterFunction m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (functions_.Find(m.function_id) == nullptr) {
        control_->RegisterFunction(m.function_id, m.payload);
        functions_.Add(std::move(m.function_id), std::move(m.payload));
      }
      return Status::Ok();
    }
    case MessageType::kSubmitTask: {
      protocol::TaskSpec m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (m.task_id.Creator() != client.id) return Status::ProtocolError("task id was not minted by this client");
      task_manager_->OnSubmit(client, std::move(m));
      return Status::Ok();
    }
    case MessageType::kPutObject: {
      protocol::PutObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return objects_->OnPut(client, std::move(m));
    }
    case MessageType::kCreateObject: {
      protocol::CreateObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      objects_->OnCreateObject(client, m);
      return Status::Ok();
    }
    case MessageType::kSubscribePinned:
    case MessageType::kSubscribe: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (type == MessageType::kSubscribe) {
        objects_->OnSubscribe(client, m.ids);
      } else {
        objects_->OnSubscribePinned(client, m.ids);
      }
      return Status::Ok();
    }
    case MessageType::kPinDeltas:
    case MessageType::kRefDeltas: {
      protocol::RefDeltas m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (type == MessageType::kRefDeltas) {
        objects_->OnRefDeltas(client.id, m);
      } else {
        objects_->OnPinDeltas(client, m);
      }
      return Status::Ok();
    }
    case MessageType::kGetStoreStats: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      objects_->OnGetStoreStats(client, m);
      return Status::Ok();
    }
    case MessageType::kWorkerBlocked:
    case MessageType::kWorkerUnblocked:
      if (worker == nullptr) return Status::ProtocolError("only workers block");
      if (type == MessageType::kWorkerBlocked) {
        dispatcher_->OnBlocked(*worker);
      } else {
        dispatcher_->OnUnblocked(*worker);
      }
      return Status::Ok();
    case MessageType::kTaskDone: {
      if (worker == nullptr) return Status::ProtocolError("TaskDone from a non-worker");
      protocol::TaskDone m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      auto task = tasks_.find(m.task_id);
      if (task != tasks_.end() && task->second.worker != client.id) {
        return Status::ProtocolError("TaskDone for a task that was not sent to this worker");
      }
      for (uint32_t i = 0; i < m.returns.size(); ++i) {
        QUANTA_RETURN_IF_ERROR(objects_->AcceptStoredValue(client.id, m.task_id.ReturnId(i), m.returns[i]));
      }
      if (worker->is_actor()) {
        actors_->OnTaskDone(*worker, std::move(m));
        return Status::Ok();
      }
      return dispatcher_->OnTaskDone(*worker, std::move(m));
    }
    case MessageType::kTasksReturned: {
      if (worker == nullptr) return Status::ProtocolError("TasksReturned from a non-worker");
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      dispatcher_->OnTasksReturned(*worker, m.ids);
      return Status::Ok();
    }
    case MessageType::kCancelTask: {
      protocol::CancelTask m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      task_manager_->OnCancel(m);
      return Status::Ok();
    }
    case MessageType::kKillActor: {
      protocol::KillActor m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      actors_->Kill(m.actor_id, m.no_restart);
      return Status::Ok();
    }
    case MessageType::kActorName: {
      protocol::ActorName m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      client.conn->Send(MessageType::kActorNameReply, actors_->OnActorName(m));
      return Status::Ok();
    }
    case MessageType::kGetClusterInfo: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      protocol::ClusterInfo reply;
      reply.request_id = m.request_id;
      reply.nodes = view_.Snapshot(LocalNodeInfo());
      client.conn->Send(MessageType::kClusterInfo, reply);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type));
  }
}

}  // namespace quanta
