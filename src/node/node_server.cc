#include "node/node_server.h"

#include <unistd.h>

#include "common/logging.h"
#include "common/random.h"
#include "net/daemon.h"

#include <cstdio>
#include <fstream>
#include <iterator>

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;

NodeServer::NodeServer(net::EventLoop* loop, NodeOptions options)
    : loop_(loop),
      options_(std::move(options)),
      node_id_(RandomHex(16)),
      task_events_(TaskEventBuffer::Options{options_.task_events_buffer}),
      reply_spin_(net::SpinBudget::Options{options_.reply_spin}),
      control_spin_(net::SpinBudget::Options{options_.reply_spin}),
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
      view_(
          [this](const protocol::NodeInfo& n) {
            QLOG(kInfo) << "node " << n.node_index << " joined at " << n.address << ":" << n.port;
            if (task_manager_ && n.node_index != view_.local_index()) task_manager_->ReplaceInfeasible();
          },
          [this](const protocol::NodeInfo& n) {
            QLOG(kWarning) << "node " << n.node_index << " is dead: " << n.death_reason;
            if (peers_) peers_->Forget(n.node_index);
            if (state_) state_->OnNodeGone(n.node_index, "it is dead (" + n.death_reason + ")");
            if (pulls_) pulls_->OnNodeDead(n.node_index);
            if (directory_) directory_->OnNodeDead(n.node_index);
            if (task_manager_) task_manager_->OnNodeDead(n.node_index, n.death_reason);
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
  lineage_ = std::make_unique<Lineage>(options_.max_lineage_bytes);
  objects_ = std::make_unique<ObjectManager>(
      &clients_, std::move(store),
      ObjectManager::Callbacks{
          [this](const ObjectID& id) { task_manager_->OnObjectSealed(id); },
          [this](const std::vector<ObjectID>& freed) {
            actors_->OnObjectsFreed(freed);
            router_->OnObjectsFreed(freed);
            lineage_->OnFreed(freed);
          },
          [this](uint64_t client, const ObjectID& id) { return MayWrite(client, id); },
          [this](const ObjectID& id) { return task_manager_->Rebuild(id); },
          [this](LocalClient& client) { logs_.NoteBeforeValue(client); }});
  dispatcher_ = std::make_unique<WorkerDispatcher>(
      loop_, WorkerDispatcher::Options{options_.prestart_workers, options_.session_dir + "/logs", &task_events_},
      options_.resources, &pool_, &tasks_, objects_.get(), &clients_,
      WorkerDispatcher::Callbacks{
          [this](const TaskID& id, std::vector<protocol::ObjectValue> returns, bool retryable) {
            task_manager_->OnTaskDone(id, std::move(returns), retryable);
          },
          [this](const TaskID& id) { task_manager_->OnTimedOut(id); },
          [this](const TaskID& id, pid_t pid, const Status& why) { task_manager_->OnWorkerDied(id, pid, why); },
          [this](const Worker& w, const Status& why) { actors_->OnWorkerLost(w, why); },
          [this](const ObjectID& actor, Worker& w) { actors_->OnPlaced(actor, w); },
          [this](const std::string& fid) { return functions_.Find(fid); }});
  if (!options_.gpu_ids.empty()) dispatcher_->SetGpuIds(options_.gpu_ids);
  actors_ = std::make_unique<ActorManager>(
      &tasks_, dispatcher_.get(), objects_.get(),
      ActorManager::Callbacks{
          [this](const TaskID& id, std::vector<protocol::ObjectValue> r) { task_manager_->Finish(id, std::move(r)); },
          [this](const TaskID& id, const protocol::ObjectValue& e) { task_manager_->Fail(id, e); },
          [this](const TaskID& id) { task_manager_->MakeReady(id); },
          [this](const TaskID& id) { return task_manager_->Unqueue(id); },
          [this](const protocol::ActorInfo& info, bool located) {
            protocol::ActorInfo report = info;
            report.node_index = located ? view_.local_index() : 0;
            if (control_) control_->Send(MessageType::kActorUpdate, report);
          }});
  router_ = std::make_unique<ActorRouter>(
      &tasks_,
      ActorRouter::Callbacks{
          [this](const ObjectID& actor) { return actors_->Hosts(actor); },
          [this](const TaskID& id, const protocol::ObjectValue& e) { task_manager_->Fail(id, e); },
          [this](Task& task, uint32_t node) {
            if (!remote_->Forward(task, node)) return false;
            // Its result usually comes back within microseconds: worth polling for.
            reply_watch_.Sent(ObjectIDHash{}(task.spec.task_id), std::chrono::steady_clock::now());
            return true;
          },
          [this](const ObjectID& actor) { control_->Send(MessageType::kSubscribeActor, protocol::IdList{{actor}}); },
          [this](uint32_t node, const ObjectID& actor, bool no_restart, const std::string&) {
            peers_->Send(node, MessageType::kKillActorRemote, protocol::KillActor{actor, no_restart});
          },
          [this](uint32_t node, const protocol::CancelTask& msg) { peers_->Send(node, MessageType::kCancelRemote, msg); },
          [this](const std::vector<ObjectID>& pins) { objects_->Release(pins); },
          [this](const protocol::TaskSpec& creation) { task_manager_->Recreate(creation); },
          [this](const ObjectID& actor, std::deque<TaskID> waiting) {
            task_manager_->AdoptActorCalls(actor, std::move(waiting));
          },
          [this](const Task& task, uint32_t node) { return lanes_->Route(task, node); },
          [this](Task& task, uint32_t node) { return lanes_->Send(task, node); },
          [this](const ObjectID& actor) { return lanes_->InFlight(actor); },
          [this](const ObjectID& actor, const protocol::CancelTask& msg) { return lanes_->Cancel(actor, msg); },
          [this](const ObjectID& actor, const std::string& why) { lanes_->Close(actor, why); },
          [this](std::chrono::milliseconds delay, std::function<void()> fn) { loop_->RunAfter(delay, std::move(fn)); }});
  if (options_.control_socket_path.empty() || !options_.node_ip.empty()) {
    auto token = net::ClusterToken::Load();
    if (!token.ok()) return token.status();
    token_ = std::make_unique<net::ClusterToken>(std::move(token).value());
  }
  peers_ = std::make_unique<PeerManager>(
      loop_, token_.get(), &view_,
      PeerManager::Callbacks{[this](uint32_t from, const protocol::Frame& f) { OnPeerMessage(from, f); },
                             [this] { directory_->Flush(); },
                             [this](uint32_t peer, const Status& why) {
                               QLOG(kWarning) << "cannot reach node " << peer << ": " << why.message();
                               if (state_) state_->OnNodeGone(peer, "unreachable (" + why.message() + ")");
                             },
                             [this](int fd, const std::string& peer) { transfer_->AdoptInbound(fd, peer); },
                             [this](int fd, const std::string& peer) { lanes_->OnLaneChannel(fd, peer); }});
  if (!options_.node_ip.empty()) QUANTA_RETURN_IF_ERROR(peers_->Listen(options_.node_ip, 0));
  directory_ = std::make_unique<ObjectDirectory>(objects_.get(), peers_.get(), &view_);
  transfer_ = std::make_unique<TransferService>(
      loop_, token_.get(), 0,
      TransferService::Callbacks{[this](uint64_t id, const Status& st) { pulls_->OnReceived(id, st); },
                                 [this](uint64_t id, const Status& st) { pulls_->OnSent(id, st); }});
  pulls_ = std::make_unique<PullManager>(loop_, objects_->store(), directory_.get(), peers_.get(), transfer_.get(),
                                         &view_);
  pulls_->set_on_pulled([this](const protocol::TransferEvent& t) { task_events_.Transferred(t); });
  scheduler_ = std::make_unique<ClusterScheduler>(&view_, &dispatcher_->queue());
  remote_ = std::make_unique<RemoteTasks>(
      &tasks_, objects_.get(), directory_.get(), peers_.get(), &functions_, &view_,
      RemoteTasks::Callbacks{
          [this](const TaskID& id, const ResourceSet& demand) { dispatcher_->Enqueue(id, demand); },
          [this](const TaskID& id, std::vector<protocol::ObjectValue> r) { task_manager_->Finish(id, std::move(r)); },
          [this](const TaskID& id, std::vector<protocol::ObjectValue> r) {
            task_manager_->OnArgumentsLost(id, std::move(r));
          },
          [this](const TaskID& id) { actors_->OnCreationSubmitted(id); },
          [this](const TaskID& id) { return actors_->OnCallSubmitted(id); },
          [this](const ObjectID& actor) { actors_->Pump(actor); },
          [this](const std::string& fid, std::function<void(const std::string*)> done) {
            forwarder_->FetchFunction(fid, std::move(done));
          }});
  task_manager_ = std::make_unique<TaskManager>(&tasks_, objects_.get(), directory_.get(), dispatcher_.get(),
                                                actors_.get(), router_.get(), scheduler_.get(), remote_.get(),
                                                &clients_, lineage_.get(), TaskManager::Options{options_.infeasible_timeout, &task_events_});
  task_manager_->cancel_remote = [this](uint32_t node, const protocol::CancelTask& msg) {
    peers_->Send(node, MessageType::kCancelRemote, msg);
  };
  lanes_ = std::make_unique<LaneService>(
      LaneService::Components{loop_, &tasks_, objects_.get(), task_manager_.get(), router_.get(), actors_.get(),
                              dispatcher_.get(), peers_.get(), &clients_, &view_, token_.get(), &task_events_},
      options_.actor_lanes);
  generators_ = MakeGeneratorStreams(&tasks_, objects_.get(), &clients_, peers_.get(), directory_.get(),
                                     remote_.get(), &view_);
  view_.set_on_resources([this] {
    scheduler_->OnViewUpdated();
    if (task_manager_->has_infeasible()) task_manager_->ReplaceInfeasible();  // totals may have grown
  });
  groups_ = std::make_unique<GroupResources>(
      dispatcher_.get(), [this](const std::string& hex) {
        task_manager_->OnGroupRemoved(hex);
        actors_->OnGroupRemoved(hex);
      });
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
  if (SharedStore* store = objects_->store()) store->set_io_progress([this] { control_->Pulse(); });
  forwarder_ = std::make_unique<ControlForwarder>(&clients_, control_.get());
  control_->set_on_rejoined([this] { forwarder_->OnRejoined(); });
  control_->set_on_head_gone([this](const std::string& why) { forwarder_->OnHeadGone(why); });
  StartStateService();
  client_dispatch_ = std::make_unique<ClientDispatch>(
      ClientDispatch::Components{&tasks_, &functions_, dispatcher_.get(), objects_.get(), task_manager_.get(),
                                 actors_.get(), router_.get(), generators_.get(), forwarder_.get(), control_.get(),
                                 state_.get(),
                                 // the control service usually answers within microseconds
                                 [this] { loop_->SpinBeforeNextWait(&control_spin_); },
                                 [this](const LocalClient& client, protocol::LaneAdopt m) {
                                   return lanes_->OnLaneAdopt(client, std::move(m));
                                 }},
      ClientDispatch::Identity{node_id_, options_.session_dir, options_.inline_threshold},
      [this](uint64_t request_id) { return NodeStatsReply(request_id); },
      [this] { return view_.Snapshot(LocalNodeInfo()); });
  peer_dispatch_ = std::make_unique<PeerDispatch>(PeerDispatch::Components{
      &tasks_, remote_.get(), scheduler_.get(), actors_.get(), task_manager_.get(), generators_.get(),
      directory_.get(), objects_.get(), pulls_.get(), state_.get(), &view_, &logs_,
      [this](const TaskID& id) { reply_watch_.Answered(ObjectIDHash{}(id)); }});
  control_->set_on_message([this](const protocol::Frame& f) { OnControlMessage(f); });
  control_->Start();
  return Status::Ok();
}

void NodeServer::OnControlMessage(const protocol::Frame& frame) {
  switch (static_cast<MessageType>(frame.type)) {
    case MessageType::kReserveBundles: {
      protocol::BundleReservation m;
      if (!protocol::DecodeMessage(frame.body, &m).ok()) return;
      protocol::BundlesReserved reply = groups_->Reserve(m);
      control_->Send(MessageType::kBundlesReserved, reply);
      if (reply.ok && task_manager_->has_infeasible()) task_manager_->ReplaceInfeasible();
      return;
    }
    case MessageType::kReturnBundles: {
      protocol::BundleReservation m;
      if (protocol::DecodeMessage(frame.body, &m).ok()) groups_->Return(m);
      return;
    }
    case MessageType::kActorUpdate: {
      protocol::ActorInfo m;
      if (protocol::DecodeMessage(frame.body, &m).ok()) router_->OnActorUpdate(m);
      return;
    }
    case MessageType::kControlReply: {
      protocol::ControlReply m;
      if (protocol::DecodeMessage(frame.body, &m).ok()) forwarder_->OnReply(std::move(m));
      return;
    }
    case MessageType::kJobFinished: {
      protocol::RequestId m;
      if (!protocol::DecodeMessage(frame.body, &m).ok()) return;
      // A driver of another node exited (or its node died): its work here ends too.
      if (static_cast<uint32_t>(m.request_id >> 32) != view_.local_index()) {
        task_manager_->OnJobEnded(m.request_id, "its driver (on node " + std::to_string(m.request_id >> 32) + ") exited");
      }
      return;
    }
    case MessageType::kPlacementGroups: {
      protocol::PlacementGroups m;
      if (protocol::DecodeMessage(frame.body, &m).ok()) forwarder_->OnPlacementGroups(std::move(m));
      return;
    }
    default:
      return;
  }
}

void NodeServer::OnJoined(const protocol::RegisterNodeReply& reply) {
  peers_->SetSelf(protocol::PeerHello{reply.node_index, reply.incarnation, reply.cluster_id});
  directory_->set_local_index(reply.node_index);
  transfer_->set_self_index(reply.node_index);
  objects_->Attach(reply.node_index, directory_.get(), pulls_.get());
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
    task_manager_->Spill();
    directory_->Flush();
    control_->ReportResources(dispatcher_->queue().available().ToMap(), dispatcher_->queue().total().ToMap());
    logs_.SendPendingNotes();
    if (task_events_.batch_ready()) FlushTaskEvents();
    if (!reply_watch_.empty() && reply_watch_.ShouldSpin(std::chrono::steady_clock::now())) {
      loop_->SpinBeforeNextWait(&reply_spin_);
    }
  });
  task_events_.set_node(reply.node_index);
  lanes_->set_self_node(reply.node_index);
  if (task_events_.enabled()) {
    auto tick = std::make_shared<std::function<void()>>();
    *tick = [this, tick] {
      if (shutting_down_) return;
      FlushTaskEvents();
      loop_->RunAfter(options_.task_events_flush, *tick);
    };
    loop_->RunAfter(options_.task_events_flush, *tick);
  }
  QLOG(kInfo) << "node " << node_id_ << " joined the cluster at " << control_->address() << " as node index "
              << reply.node_index << "; listening on " << options_.socket_path << " with resources "
              << options_.resources.ToString();
  net::SignalReady(options_.ready_fd, std::to_string(reply.node_index) + " " + node_id_);
  options_.ready_fd = -1;
  EverySecond();
}

void NodeServer::FlushTaskEvents() {
  task_events_.Flush([this](const TaskEventBuffer::Batch& batch) {
    if (!control_->connected()) return false;  // kept (bounded) until the head is back
    control_->Send(MessageType::kTaskEvents, batch);
    return true;
  });
}

void NodeServer::EverySecond() {
  if (shutting_down_) return;
  task_manager_->ExpireInfeasible();
  loop_->RunAfter(std::chrono::milliseconds(1000), [this] { EverySecond(); });
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
  info.port = peers_ ? peers_->port() : 0;
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

protocol::NodeStats NodeServer::NodeStatsReply(uint64_t request_id) const {
  protocol::NodeStats s;
  s.request_id = request_id;
  auto add = [&](const char* name, uint64_t v) { s.counters.emplace_back(name, static_cast<int64_t>(v)); };
  add("node_index", view_.local_index());
  add("tasks_forwarded", remote_->forwarded());
  add("generator_items_sealed", generators_->items_sealed());
  add("tasks_executed_for_other_nodes", remote_->executed_for_others());
  const PeerManager::Stats& p = peers_->stats();
  add("peer_bytes_sent", p.bytes_sent);
  add("peer_bytes_received", p.bytes_received);
  add("peer_frames_sent", p.frames_sent);
  add("peer_frames_received", p.frames_received);
  add("peer_connects", p.connects);
  add("peer_handshakes_refused", p.refused);
  const net::SpinBudget::Stats& spin = reply_spin_.stats();
  add("reply_spins", spin.spins);
  add("reply_spins_caught", spin.caught);
  add("reply_spin_us", static_cast<uint64_t>(spin.spent.count()));
  add("control_reply_spins", control_spin_.stats().spins);
  add("control_reply_spins_caught", control_spin_.stats().caught);
  const ActorLanes::Stats& lane = lanes_->caller_stats();
  add("lanes_opened", lane.opened);
  add("lanes_refused", lane.refused);
  add("lanes_broken", lane.broken);
  add("lane_calls_sent", lane.calls);
  add("lane_results_received", lane.results);
  add("lane_bytes_sent", lane.bytes_sent);
  add("lane_bytes_received", lane.bytes_received);
  add("lanes_attached", lanes_->actor_stats().attached);
  add("lanes_turned_away", lanes_->actor_stats().refused);
  add("lane_calls_adopted", lanes_->calls_adopted());
  add("workers", dispatcher_->num_workers());
  add("tasks", tasks_.size());
  add("clients", clients_.size());
  add("worker_lines_dropped", logs_.dropped_lines());
  const TransferService::Stats& t = transfer_->stats();
  add("transfer_bytes_sent", t.bytes_sent);
  add("transfer_bytes_received", t.bytes_received);
  add("transfer_chunks_sent", t.chunks_sent);
  add("transfer_chunks_received", t.chunks_received);
  add("transfers_received", t.transfers_received);
  add("transfers_failed", t.transfers_failed);
  add("transfer_checksum_failures", t.checksum_failures);
  const PullManager::Stats& pl = pulls_->stats();
  add("pulls_started", pl.pulls_started);
  add("pulls_done", pl.pulls_done);
  add("pulls_failed", pl.pulls_failed);
  add("pull_retries", pl.retries);
  add("objects_served", pl.sends);
  const ObjectDirectory::Stats& d = directory_->stats();
  add("borrows_registered", d.borrows_registered);
  add("borrows_released", d.borrows_released);
  add("frees_sent", d.frees_sent);
  add("copies_held_for_other_owners", objects_->num_held_for_owners());
  add("objects", objects_->table().size());
  return s;
}

bool NodeServer::MayWrite(uint64_t client, const ObjectID& id) const {
  if (id.Index() == ObjectID::kPutIndex) return id.Creator() == client;
  auto it = tasks_.find(id.TaskId());
  return it != tasks_.end() && it->second.worker == client && id.Index() >= 1 &&
         (id.Index() <= it->second.spec.num_returns || it->second.is_streaming());  // or a generator item
}

void NodeServer::OnWorkerOutput(const std::string& token, bool is_stderr, std::string text) {
  Worker* worker = dispatcher_ ? dispatcher_->FindByToken(token) : nullptr;
  if (worker == nullptr || worker->last_job == 0) return;
  protocol::LogLines lines;
  lines.pid = static_cast<uint32_t>(worker->pid);
  lines.task_name = worker->last_task_name;
  lines.is_stderr = is_stderr;
  lines.text = std::move(text);
  auto driver_node = static_cast<uint32_t>(worker->last_job >> 32);
  if (driver_node != view_.local_index() && driver_node != 0) {
    // The job's driver is on another node: its output travels there, bounded by that node.
    lines.origin = options_.node_ip;
    peers_->Send(driver_node, MessageType::kForwardedLogLines,
                 protocol::ForwardedLogLines{worker->last_job, options_.node_ip, std::move(lines)});
    return;
  }
  logs_.Forward(worker->last_job, std::move(lines));
}

void NodeServer::OnPeerMessage(uint32_t from, const protocol::Frame& frame) {
  Status st = peer_dispatch_->Dispatch(from, frame);
  if (!st.ok()) {
    QLOG(kWarning) << "rejecting " << protocol::MessageTypeName(MessageType(frame.type)) << " from node " << from
                   << ": " << st.ToString();
  }
}

void NodeServer::OnClientMessage(LocalClient& client, const protocol::Frame& frame) {
  Status st = client_dispatch_->Dispatch(client, frame);
  if (!st.ok()) {
    QLOG(kWarning) << "rejecting " << protocol::MessageTypeName(MessageType(frame.type)) << " from client pid="
                   << client.pid << ": " << st.ToString();
    client.conn->Close(st);
  }
}

void NodeServer::StartStateService() {
  state_ = std::make_unique<StateService>(
      loop_, StateService::Options{options_.session_dir + "/logs"},
      StateService::Sources{
          [this] { return view_.local_index(); },
          [this] { return DescribeProcesses(clients_, *dispatcher_, pool_); },
          [this] { return objects_->DescribeStore(0); },
          [this] {
            std::vector<std::pair<std::string, int64_t>> c;
            protocol::StoreStatsReply s = objects_->DescribeStore(0);
            c.emplace_back("store_capacity", static_cast<int64_t>(s.capacity));
            c.emplace_back("store_used", static_cast<int64_t>(s.used));
            c.emplace_back("store_spilled_bytes", static_cast<int64_t>(s.spilled_bytes));
            c.emplace_back("objects", static_cast<int64_t>(s.objects.size()));
            c.emplace_back("workers", static_cast<int64_t>(dispatcher_->num_workers()));
            c.emplace_back("clients", static_cast<int64_t>(clients_.size()));
            return c;
          },
          [this](uint32_t node, const protocol::NodeStateQuery& q) {
            if (!view_.IsAlive(node)) return false;
            peers_->Send(node, MessageType::kPeerStateQuery, q);
            return true;
          },
          [this](uint32_t node, const protocol::NodeStateReply& r) {
            peers_->Send(node, MessageType::kPeerStateReply, r);
          },
          [this](uint64_t client, const protocol::NodeStateReply& r) {
            if (LocalClient* c = clients_.Find(client)) c->conn->Send(MessageType::kNodeState, r);
          }});
}

void NodeServer::OnClientClosed(const LocalClient& client, const Status& why) {
  if (client.is_worker()) {
    dispatcher_->OnWorkerClosed(client, why);
    lanes_->OnWorkerGone(client.id);
  }
  // As in Ray: a driver's work ends with it (its detached actors and others' work go on).
  if (client.is_driver() && !shutting_down_) {
    task_manager_->OnJobEnded(client.id, "its driver (pid " + std::to_string(client.pid) + ") exited");
    control_->Send(MessageType::kJobFinished, protocol::RequestId{client.id});
  }
  logs_.Forget(client.id);
  objects_->DropClient(client.id);
  QLOG(kInfo) << "client pid=" << client.pid << " disconnected: " << why.message();
}

}  // namespace quanta
