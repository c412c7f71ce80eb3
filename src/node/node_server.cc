#include "node/node_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;

NodeServer::NodeServer(net::EventLoop* loop, NodeOptions options)
    : loop_(loop),
      options_(std::move(options)),
      queue_(options_.resources),
      pool_(loop,
            WorkerPool::Options{options_.python, options_.socket_path,
                                options_.session_dir + "/logs", options_.worker_env},
            [this](uint64_t token, bool is_err, std::string text) {
              OnWorkerOutput(token, is_err, std::move(text));
            },
            [this](uint64_t token, int status) { OnWorkerExit(token, status); }) {
  char id[17];
  snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(RandomUniqueId()));
  node_id_ = id;
}

Status NodeServer::Start() {
  QUANTA_RETURN_IF_ERROR(pool_.Init());
  if (options_.store_capacity > 0) {
    auto memory = SharedMemory::Create("quanta-object-store", options_.store_capacity);
    if (!memory.ok()) return memory.status();
    std::string spill = options_.spill_dir.empty() ? options_.session_dir + "/spill" : options_.spill_dir;
    store_ = std::make_unique<SharedStore>(std::move(memory).value(), spill);
  }
  auto fd = net::ListenUnix(options_.socket_path);
  if (!fd.ok()) return fd.status();
  listen_fd_ = fd.value();
  QUANTA_RETURN_IF_ERROR(loop_->Add(listen_fd_, EPOLLIN, [this](uint32_t) { OnAccept(); }));
  if (options_.lifeline_fd >= 0) {
    QUANTA_RETURN_IF_ERROR(loop_->Add(options_.lifeline_fd, EPOLLIN | EPOLLHUP, [this](uint32_t) {
      char buf[64];
      if (::read(options_.lifeline_fd, buf, sizeof buf) <= 0) Shutdown("the driver that started the cluster exited");
    }));
  }
  ConnectToControl();
  for (int i = 0; i < options_.prestart_workers; ++i) {
    StartWorker();
  }
  loop_->AtEndOfIteration([this] {
    ScheduleTasks();
    ReportResources();
  });
  ExitSurplusIdleWorkers();
  QLOG(kInfo) << "node " << node_id_ << " listening on " << options_.socket_path
              << " with resources " << options_.resources.ToString();
  return Status::Ok();
}

void NodeServer::Shutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  QLOG(kInfo) << "shutting down: " << why;
  pool_.KillAll();
  ::unlink(options_.socket_path.c_str());
  loop_->Stop();
}

void NodeServer::ConnectToControl() {
  if (options_.control_socket_path.empty()) return;
  auto fd = net::ConnectUnix(options_.control_socket_path, true);
  if (!fd.ok()) {
    QLOG(kWarning) << "cannot reach control service: " << fd.status().ToString();
    loop_->RunAfter(std::chrono::milliseconds(50), [this] { ConnectToControl(); });
    return;
  }
  auto conn = net::Connection::Create(
      loop_, fd.value(), [](net::Connection&, const protocol::Frame&) {},
      [this](net::Connection&, const Status& why) {
        if (!shutting_down_) QLOG(kWarning) << "lost the control service: " << why.ToString();
      });
  if (!conn.ok()) return;
  control_ = conn.value();
  control_->Send(MessageType::kRegisterNode, protocol::RegisterNode{LocalNodeInfo()});
  for (const auto& [fid, payload] : functions_) {
    control_->Send(MessageType::kRegisterFunction, protocol::RegisterFunction{fid, payload});
  }
}

protocol::NodeInfo NodeServer::LocalNodeInfo() const {
  protocol::NodeInfo info;
  info.node_id = node_id_;
  info.address = options_.socket_path;
  info.alive = true;
  info.total = queue_.total().ToMap();
  info.available = queue_.available().ToMap();
  return info;
}

void NodeServer::ReportResources() {
  if (!control_ || control_->closed()) return;
  auto now = queue_.available().ToMap();
  if (now == last_reported_) return;
  last_reported_ = now;
  control_->Send(MessageType::kResourceUpdate, protocol::ResourceUpdate{node_id_, now});
}

void NodeServer::OnAccept() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    uint64_t id = RandomUniqueId();
    auto conn = net::Connection::Create(
        loop_, fd, [this](net::Connection& c, const protocol::Frame& f) { OnMessage(c, f); },
        [this, id](net::Connection&, const Status& why) { OnClientClosed(id, why); });
    if (!conn.ok()) {
      ::close(fd);
      continue;
    }
    conn.value()->tag = id;
    Client& c = clients_[id];
    c.id = id;
    c.conn = conn.value();
  }
}

NodeServer::Client* NodeServer::FindClient(uint64_t id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : &it->second;
}

NodeServer::Client* NodeServer::FindWorkerByToken(uint64_t token) {
  auto it = token_to_client_.find(token);
  return it == token_to_client_.end() ? nullptr : FindClient(it->second);
}

void NodeServer::OnMessage(net::Connection& conn, const protocol::Frame& frame) {
  Client* client = FindClient(conn.tag);
  if (client == nullptr) return;
  Status st = Dispatch(*client, frame);
  if (!st.ok()) {
    QLOG(kWarning) << "rejecting " << protocol::MessageTypeName(MessageType(frame.type))
                   << " from client pid=" << client->pid << ": " << st.ToString();
    conn.Close(st);
  }
}

Status NodeServer::Dispatch(Client& client, const protocol::Frame& frame) {
  auto type = static_cast<MessageType>(frame.type);
  bool is_worker = client.role == protocol::ClientRole::kWorker;
  if (client.pid == 0 && type != MessageType::kHello) {
    return Status::ProtocolError("first message must be Hello");
  }
  switch (type) {
    case MessageType::kHello: {
      protocol::Hello m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return OnHello(*client.conn, m);
    }
    case MessageType::kRegisterFunction: {
      protocol::RegisterFunction m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnRegisterFunction(std::move(m));
      return Status::Ok();
    }
    case MessageType::kSubmitTask: {
      protocol::TaskSpec m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (m.task_id.Creator() != client.id) {
        return Status::ProtocolError("task id was not minted by this client");
      }
      OnSubmitTask(client, std::move(m));
      return Status::Ok();
    }
    case MessageType::kPutObject: {
      protocol::PutObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      QUANTA_RETURN_IF_ERROR(AcceptStoredValue(client, m.object_id, m.value));
      OnPutObject(client, std::move(m));
      return Status::Ok();
    }
    case MessageType::kCreateObject: {
      protocol::CreateObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnCreateObject(client, m);
      return Status::Ok();
    }
    case MessageType::kSubscribePinned: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnSubscribePinned(client, m.ids);
      return Status::Ok();
    }
    case MessageType::kPinDeltas: {
      protocol::RefDeltas m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnPinDeltas(client, m);
      return Status::Ok();
    }
    case MessageType::kGetStoreStats: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnGetStoreStats(client, m);
      return Status::Ok();
    }
    case MessageType::kSubscribe: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnSubscribe(client, m.ids);
      return Status::Ok();
    }
    case MessageType::kRefDeltas: {
      protocol::RefDeltas m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnRefDeltas(client, m);
      return Status::Ok();
    }
    case MessageType::kWorkerBlocked:
    case MessageType::kWorkerUnblocked:
      if (!is_worker) return Status::ProtocolError("only workers block");
      if (type == MessageType::kWorkerBlocked) {
        OnWorkerBlocked(client);
      } else {
        OnWorkerUnblocked(client);
      }
      return Status::Ok();
    case MessageType::kTaskDone: {
      if (!is_worker) return Status::ProtocolError("TaskDone from a non-worker");
      protocol::TaskDone m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      for (uint32_t i = 0; i < m.returns.size(); ++i) {
        QUANTA_RETURN_IF_ERROR(AcceptStoredValue(client, m.task_id.ReturnId(i), m.returns[i]));
      }
      OnTaskDone(client, std::move(m));
      return Status::Ok();
    }
    case MessageType::kTasksReturned: {
      if (!is_worker) return Status::ProtocolError("TasksReturned from a non-worker");
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnTasksReturned(client, m.ids);
      return Status::Ok();
    }
    case MessageType::kCancelTask: {
      protocol::CancelTask m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnCancelTask(m);
      return Status::Ok();
    }
    case MessageType::kKillActor: {
      protocol::KillActor m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnKillActor(m);
      return Status::Ok();
    }
    case MessageType::kActorName: {
      protocol::ActorName m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      OnActorName(client, m);
      return Status::Ok();
    }
    case MessageType::kGetClusterInfo: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      protocol::ClusterInfo reply;
      reply.request_id = m.request_id;
      reply.nodes.push_back(LocalNodeInfo());
      client.conn->Send(MessageType::kClusterInfo, reply);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type));
  }
}

Status NodeServer::OnHello(net::Connection& conn, const protocol::Hello& hello) {
  Client& client = clients_[conn.tag];
  if (client.pid != 0) return Status::ProtocolError("duplicate Hello");
  client.role = hello.role;
  client.pid = hello.pid == 0 ? 1 : hello.pid;
  client.log_to_driver = hello.log_to_driver;
  if (hello.role == protocol::ClientRole::kWorker) {
    if (token_to_client_.count(hello.worker_token) || pool_.PidOf(hello.worker_token) == 0) {
      return Status::ProtocolError("unknown worker token " + std::to_string(hello.worker_token));
    }
    client.worker_token = hello.worker_token;
    token_to_client_[hello.worker_token] = client.id;
    client.state = WorkerState::kIdle;
    client.idle_since = std::chrono::steady_clock::now();
    failed_starts_ = 0;
    if (starting_workers_ > 0) --starting_workers_;
    idle_workers_.push_back(client.id);
  }
  protocol::HelloReply reply;
  reply.client_id = client.id;
  reply.node_id = node_id_;
  reply.session_dir = options_.session_dir;
  if (store_) {
    reply.store_path = store_->memory().path();
    reply.store_size = store_->memory().size();
  }
  reply.inline_threshold = options_.inline_threshold;
  conn.Send(MessageType::kHelloReply, reply);
  return Status::Ok();
}

void NodeServer::OnRegisterFunction(protocol::RegisterFunction msg) {
  if (functions_.count(msg.function_id)) return;
  if (control_ && !control_->closed()) control_->Send(MessageType::kRegisterFunction, msg);
  functions_.emplace(std::move(msg.function_id), std::move(msg.payload));
}

void NodeServer::AddHolding(Client& client, const ObjectID& id, int64_t n) {
  int64_t& h = client.holdings[id];
  h += n;
  if (h <= 0) client.holdings.erase(id);
}

void NodeServer::OnSubmitTask(Client& client, protocol::TaskSpec spec) {
  TaskID id = spec.task_id;
  if (tasks_.count(id)) {
    QLOG(kWarning) << "duplicate task id " << id.Hex() << " ignored";
    return;
  }
  for (uint32_t i = 0; i < spec.num_returns; ++i) {
    ObjectID rid = spec.ReturnId(i);
    objects_.AddRef(rid);
    AddHolding(client, rid, 1);
    objects_.Subscribe(rid, client.id);
  }
  std::vector<ObjectID> missing;
  for (const auto& arg : spec.arg_refs) {
    objects_.AddRef(arg);
    if (!objects_.IsSealed(arg)) missing.push_back(arg);
  }
  for (const auto& nested : spec.nested_refs) objects_.AddRef(nested);
  Task& task = tasks_[id];
  task.retries_left = spec.max_retries;
  task.submitter = client.id;
  task.spec = std::move(spec);
  if (task.spec.kind != protocol::TaskKind::kNormal) SubmitActorTask(client, id);
  if (!tasks_.count(id)) return;  // failed at once (e.g. the actor is dead)
  if (missing.empty()) {
    MakeReady(id);
  } else {
    deps_.Wait(id, missing);
  }
}

void NodeServer::MakeReady(const TaskID& id) {
  Task& task = tasks_.at(id);
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_.Find(arg);
    if (e != nullptr && e->value.IsError()) {
      ObjectValue error = e->value;  // the argument's failure is this task's failure
      bool actor_call = task.spec.kind == protocol::TaskKind::kActorMethod;
      ObjectID actor_id = task.spec.actor_id;
      FailTask(id, error);
      // Later calls to the actor may have been waiting behind this one.
      if (actor_call) {
        if (Actor* actor = actors_.Find(actor_id)) PumpActor(*actor);
      }
      return;
    }
  }
  task.deps_ready = true;
  if (task.spec.kind == protocol::TaskKind::kActorMethod) {
    if (Actor* actor = actors_.Find(task.spec.actor_id)) PumpActor(*actor);
    return;
  }
  queue_.Push(id, ResourceSet(task.spec.resources));
}

void NodeServer::ScheduleTasks() {
  if (shutting_down_) return;
  while (!idle_workers_.empty() && queue_.HasRunnable()) {
    // Most recently used first: its caches (and imported modules) are warm, and workers beyond
    // what the load needs stay idle instead of taking turns.
    uint64_t wid = idle_workers_.back();
    idle_workers_.pop_back();
    Client* worker = FindClient(wid);
    if (worker == nullptr || worker->state != WorkerState::kIdle) continue;
    auto next = queue_.PopRunnable();
    if (!next) {
      idle_workers_.push_back(wid);
      break;
    }
    TaskID first = next->first;
    ResourceSet demand = next->second;
    StartTaskOn(*worker, first, std::move(next->second));
    QueueFollowers(*worker, first, demand);
  }
  TopUpBusyWorkers();
  StealForIdleWorkers();
  // Start more workers if tasks could run but nobody is idle to run them.
  if (idle_workers_.empty()) {
    size_t wanted = queue_.CountRunnable(64);
    while (static_cast<size_t>(starting_workers_) < wanted) {
      if (!StartWorker()) break;
    }
  }
  WarnInfeasible();
}

void NodeServer::WarnInfeasible() {
  for (const auto& [demand, shortfall] : queue_.InfeasibleClasses()) {
    std::string key = demand.ToString();
    if (!warned_infeasible_.insert(key).second) continue;
    std::string text = "a task needs " + demand.ToString() +
                       ", which no node in the cluster has (" + shortfall +
                       "); it stays pending until a node with these resources joins. Other "
                       "tasks are not affected.";
    QLOG(kWarning) << text;
    for (auto& [cid, c] : clients_) {
      if (c.role == protocol::ClientRole::kDriver) c.conn->Send(MessageType::kWarning, protocol::Warning{text});
    }
  }
}

void NodeServer::SendTaskTo(Client& worker, const TaskID& id) {
  Task& task = tasks_.at(id);
  protocol::ExecuteTask msg;
  msg.spec = task.spec;
  if (worker.functions.insert(task.spec.function_id).second) {
    auto fn = functions_.find(task.spec.function_id);
    if (fn != functions_.end()) msg.function_payload = fn->second;
  }
  msg.args.reserve(task.spec.arg_refs.size());
  for (const auto& arg : task.spec.arg_refs) {
    const ObjectTable::Entry* e = objects_.Find(arg);
    msg.args.push_back(e ? ValueForClient(arg, e->value, &worker, true)
                         : SystemError(ObjectKind::kObjectLost, "argument was freed"));
  }
  task.worker = worker.id;
  worker.conn->Send(MessageType::kExecuteTask, msg);
}

void NodeServer::MakeCurrent(Client& worker, const TaskID& id) {
  worker.current_task = id;
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  it->second.started = std::chrono::steady_clock::now();
  worker.last_job = it->second.spec.job_id;  // its output goes to this job's driver
  worker.last_task_name = it->second.spec.name;
}

void NodeServer::StartTaskOn(Client& worker, const TaskID& id, ResourceSet demand) {
  Task& task = tasks_.at(id);
  worker.state = WorkerState::kBusy;
  worker.held = std::move(demand);
  worker.lent_back = false;
  MakeCurrent(worker, id);
  if (task.spec.kind == protocol::TaskKind::kActorCreation) {
    Actor* actor = actors_.Find(task.spec.task_id);
    worker.actor_id = task.spec.task_id;
    worker.last_task_name = task.spec.actor.class_name;
    ++actor_workers_;
    if (actor != nullptr) actor->worker = worker.id;
    ReplenishPool();
  }
  SendTaskTo(worker, id);
}

void NodeServer::OnTaskDone(Client& worker, protocol::TaskDone msg) {
  if (!worker.actor_id.IsNil()) {
    OnActorTaskDone(worker, std::move(msg));
    return;
  }
  auto it = tasks_.find(msg.task_id);
  if (worker.current_task && *worker.current_task == msg.task_id) {
    if (it != tasks_.end()) RecordDuration(it->second);
    ReleaseWorker(worker);  // starts its next queued task, if any
  } else {
    // A queued task the worker dropped before starting it (cancelled there).
    auto q = std::find(worker.queued.begin(), worker.queued.end(), msg.task_id);
    if (q == worker.queued.end()) {
      QLOG(kWarning) << "TaskDone for a task the worker is not running: " << msg.task_id.Hex();
      return;
    }
    worker.queued.erase(q);
  }
  if (it == tasks_.end()) return;
  if (msg.returns.size() != it->second.spec.num_returns) {
    std::string text = "worker returned " + std::to_string(msg.returns.size()) +
                       " values for a task with num_returns=" +
                       std::to_string(it->second.spec.num_returns);
    FailTask(msg.task_id, SystemError(ObjectKind::kWorkerCrashed, text));
    return;
  }
  FinishTask(msg.task_id, std::move(msg.returns));
}

void NodeServer::FinishTask(const TaskID& id, std::vector<ObjectValue> returns) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  Task task = std::move(it->second);
  tasks_.erase(it);
  if (task.spec.kind == protocol::TaskKind::kActorMethod) {
    if (Actor* actor = actors_.Find(task.spec.actor_id)) actor->in_flight.erase(task.spec.task_id);
  }
  for (uint32_t i = 0; i < returns.size(); ++i) SealObject(task.spec.ReturnId(i), std::move(returns[i]));
  // An actor's constructor arguments stay pinned while it may restart (MarkActorDead drops them).
  if (task.spec.kind == protocol::TaskKind::kActorCreation) return;
  std::vector<ObjectID> pins = task.spec.arg_refs;
  pins.insert(pins.end(), task.spec.nested_refs.begin(), task.spec.nested_refs.end());
  ReleaseRefs(pins);
}

void NodeServer::FailTask(const TaskID& id, const ObjectValue& error) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  std::vector<ObjectValue> returns(it->second.spec.num_returns, error);
  for (auto& v : returns) v.nested_refs.clear();
  FinishTask(id, std::move(returns));
}

void NodeServer::SealObject(const ObjectID& id, ObjectValue value) {
  std::vector<uint64_t> subscribers = objects_.Seal(id, std::move(value));
  const ObjectTable::Entry* e = objects_.Find(id);
  if (e != nullptr) {
    for (uint64_t cid : subscribers) {
      Client* c = FindClient(cid);
      if (c != nullptr && c->holdings.count(id)) SendObject(*c, id, ValueForClient(id, e->value, c, false));
    }
  }
  std::vector<TaskID> ready;
  deps_.OnAvailable(id, &ready);
  for (const auto& t : ready) MakeReady(t);
  std::vector<ObjectID> freed;
  objects_.EraseIfUnreferenced(id, &freed);
  HandleFreed(freed);
}

void NodeServer::SendObject(Client& client, const ObjectID& id, const ObjectValue& value) {
  client.conn->Send(MessageType::kObjectReady, protocol::ObjectReady{id, value});
}

void NodeServer::ReleaseRefs(const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> freed;
  for (const auto& id : ids) objects_.RemoveRef(id, 1, &freed);
  HandleFreed(freed);
}

void NodeServer::OnPutObject(Client& client, protocol::PutObject msg) {
  if (objects_.IsSealed(msg.object_id)) return;
  objects_.AddRef(msg.object_id);
  AddHolding(client, msg.object_id, 1);
  SealObject(msg.object_id, std::move(msg.value));
}

void NodeServer::OnSubscribe(Client& client, const std::vector<ObjectID>& ids) {
  for (const auto& id : ids) {
    const ObjectTable::Entry* e = objects_.Find(id);
    if (e == nullptr) {
      SendObject(client, id,
                 SystemError(ObjectKind::kObjectLost,
                             "object " + id.Hex() + " does not exist on this node: it was freed "
                             "(every reference to it was dropped) or belongs to another cluster"));
      continue;
    }
    if (objects_.Subscribe(id, client.id)) SendObject(client, id, ValueForClient(id, e->value, &client, false));
  }
}

void NodeServer::OnRefDeltas(Client& client, const protocol::RefDeltas& msg) {
  // A batch is unordered: apply every increment before any decrement, so an object that one
  // ref kept alive cannot be freed just before another ref to it (in the same batch) arrives.
  for (const auto& [id, delta] : msg.deltas) {
    if (delta > 0) {
      objects_.AddRef(id, delta);
      AddHolding(client, id, delta);
    }
  }
  std::vector<ObjectID> freed;
  for (const auto& [id, delta] : msg.deltas) {
    if (delta >= 0) continue;
    auto h = client.holdings.find(id);
    int64_t n = std::min<int64_t>(-static_cast<int64_t>(delta), h == client.holdings.end() ? 0 : h->second);
    if (n == 0) continue;  // never held: ignore rather than corrupt others' counts
    AddHolding(client, id, -n);
    objects_.RemoveRef(id, n, &freed);
  }
  HandleFreed(freed);
}

ObjectValue NodeServer::SystemError(ObjectKind kind, std::string text) {
  ObjectValue v;
  v.kind = kind;
  v.data = std::move(text);
  return v;
}

}  // namespace quanta
