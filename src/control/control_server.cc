#include "control/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/ids.h"
#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

namespace {
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(5000);
constexpr size_t kMaxPendingHandshakes = 4096;
constexpr auto kResourceViewBatch = std::chrono::milliseconds(20);
constexpr uint32_t kMaxFrameBeforeRegister = 64 * 1024;
constexpr size_t kMaxHeldRegistrations = 1000;

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}
}  // namespace

ControlServer::ControlServer(net::EventLoop* loop, ControlOptions options, std::unique_ptr<TableStore> store)
    : loop_(loop),
      options_(std::move(options)),
      cluster_id_(RandomUniqueId()),
      store_(std::move(store)),
      nodes_(store_.get()),
      groups_(&nodes_,
              PlacementGroupManager::Callbacks{
                  [this](uint32_t node, const protocol::BundleReservation& r) {
                    auto conn = node_conn_.find(node);
                    if (conn == node_conn_.end()) return;
                    auto p = peers_.find(conn->second);
                    if (p != peers_.end()) p->second.conn->Send(MessageType::kReserveBundles, r);
                  },
                  [this](const ObjectID& group, bool removed) {
                    BroadcastToNodes(MessageType::kReturnBundles, protocol::BundleReservation{group, {}, removed});
                  }},
              store_.get()),
      actors_(store_.get()),
      kv_(store_.get()),
      jobs_(store_.get()),
      tasks_(options_.max_task_rows) {}

Status ControlServer::Restore() {
  if (!store_) return Status::Ok();
  auto meta = store_->Load("meta");
  if (!meta.ok()) return meta.status();
  bool found = false;
  for (const auto& [key, value] : meta.value()) {
    if (key == "cluster_id" && value.size() == 8) {
      cluster_id_ = KeyU64(value);
      found = true;
    }
  }
  if (!found) {
    // A new cluster: its id must be durable before any node hears it.
    QUANTA_RETURN_IF_ERROR(store_->Put("meta", "cluster_id", U64Key(cluster_id_)));
    QLOG(kInfo) << "tables persisted to " << store_->Describe() << " (empty: a new cluster)";
    return Status::Ok();
  }
  auto waiting = nodes_.Restore(NodeTable::Clock::now() + options_.rejoin_grace);
  if (!waiting.ok()) return waiting.status();
  auto actors = actors_.Restore();
  if (!actors.ok()) return actors.status();
  auto keys = kv_.Restore();
  if (!keys.ok()) return keys.status();
  auto jobs = jobs_.Restore();
  if (!jobs.ok()) return jobs.status();
  auto groups = groups_.Restore();
  if (!groups.ok()) return groups.status();
  QLOG(kInfo) << "restarted from " << store_->Describe() << ": " << nodes_.All().size() << " nodes ("
              << waiting.value() << " alive, given " << options_.rejoin_grace.count() << " ms to reconnect), "
              << actors.value() << " actors, " << keys.value() << " KV keys, " << jobs.value() << " jobs, "
              << groups.value() << " placement groups";
  return Status::Ok();
}

Status ControlServer::Start() {
  QUANTA_RETURN_IF_ERROR(Restore());
  auto unix_listener = net::Listener::Unix(loop_, options_.socket_path, 0600, [this](int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != ::geteuid()) {
      QLOG(kWarning) << "refusing a local connection from uid " << cred.uid << " (pid " << cred.pid << ")";
      ::close(fd);
      return;
    }
    Adopt(fd, net::Channel::kControl, "local pid " + std::to_string(cred.pid));
  });
  if (!unix_listener.ok()) return unix_listener.status();
  unix_ = std::move(unix_listener).value();
  if (options_.tcp_port >= 0) {
    auto token = net::ClusterToken::Load();
    if (!token.ok()) return token.status();
    token_ = std::make_unique<net::ClusterToken>(std::move(token).value());
    handshakes_ = std::make_unique<net::HandshakeDriver>(loop_, token_.get(), kHandshakeTimeout, kMaxPendingHandshakes);
    auto tcp = net::Listener::Tcp(loop_, options_.tcp_host, static_cast<uint16_t>(options_.tcp_port), [this](int fd) {
      net::TuneTcp(fd);
      std::string peer = net::PeerName(fd);
      handshakes_->Accept(fd, peer, [this, peer](Result<int> done, net::Channel channel) {
        if (!done.ok()) {
          QLOG(kWarning) << "refused a connection from " << peer << ": " << done.status().message();
          return;
        }
        if (channel != net::Channel::kControl && channel != net::Channel::kTool) {
          QLOG(kWarning) << "refused a " << net::ChannelName(channel) << " connection from " << peer
                         << ": the control service serves control and tool channels only";
          ::close(done.value());
          return;
        }
        Adopt(done.value(), channel, peer);
      });
    });
    if (!tcp.ok()) return tcp.status();
    tcp_ = std::move(tcp).value();
  }
  if (options_.lifeline_fd >= 0) {
    QUANTA_RETURN_IF_ERROR(loop_->Add(options_.lifeline_fd, EPOLLIN | EPOLLHUP, [this](uint32_t) {
      char buf[64];
      if (::read(options_.lifeline_fd, buf, sizeof buf) <= 0) Shutdown("the driver that started the cluster exited");
    }));
  }
  CheckHeartbeats();
  EverySecond();
  QLOG(kInfo) << "control service listening on " << options_.socket_path
              << (tcp_ ? " and " + (options_.tcp_host.empty() ? std::string("127.0.0.1") : options_.tcp_host) + ":" +
                             std::to_string(tcp_->port())
                       : std::string());
  return Status::Ok();
}

void ControlServer::Shutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  QLOG(kInfo) << "shutting down: " << why;
  unix_.reset();
  tcp_.reset();
  loop_->Stop();
}

void ControlServer::Adopt(int fd, net::Channel channel, std::string name) {
  uint64_t id = next_conn_id_++;
  auto conn = net::Connection::Create(
      loop_, fd,
      [this](net::Connection& c, const protocol::Frame& f) {
        auto it = peers_.find(c.tag);
        if (it == peers_.end()) return;
        Status st = Handle(it->second, f);
        if (!st.ok()) {
          QLOG(kWarning) << "rejecting " << protocol::MessageTypeName(MessageType(f.type)) << " from "
                         << it->second.name << ": " << st.ToString();
          c.Close(st);
        }
      },
      [this, id](net::Connection&, const Status& why) { OnClosed(id, why); });
  if (!conn.ok()) {
    ::close(fd);
    return;
  }
  conn.value()->tag = id;
  conn.value()->SetMaxFrameBody(kMaxFrameBeforeRegister);
  Peer& p = peers_[id];
  p.conn = conn.value();
  p.channel = channel;
  p.name = std::move(name);
}

template <typename M>
void ControlServer::BroadcastToNodes(MessageType type, const M& msg, uint32_t except) {
  std::string frame;
  protocol::AppendMessage(&frame, type, msg);
  for (const auto& [index, conn_id] : node_conn_) {
    if (index == except) continue;
    auto it = peers_.find(conn_id);
    if (it != peers_.end()) it->second.conn->SendEncoded(frame);
  }
}

Status ControlServer::Handle(Peer& peer, const protocol::Frame& frame) {
  auto type = static_cast<MessageType>(frame.type);
  if (peer.node_index != 0) nodes_.Heard(peer.node_index, NodeTable::Clock::now());
  if (peer.channel == net::Channel::kTool && type != MessageType::kGetClusterInfo &&
      type != MessageType::kGetPlacementGroups && type != MessageType::kControlRequest) {
    return Status::ProtocolError("a tool connection may only read the cluster's state");
  }
  switch (type) {
    case MessageType::kRegisterNode: {
      if (peer.node_index != 0) return Status::ProtocolError("this connection already registered a node");
      protocol::RegisterNode m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (m.node.node_index == 0 && nodes_.num_awaiting_rejoin() > 0) {
        // Restarted: a new node joins once the old ones are back (or declared dead), so that
        // they all hear of it and accept its peer connections.
        if (held_.size() >= kMaxHeldRegistrations) {
          protocol::RegisterNodeReply reply;
          reply.error = "the head is restarting and waiting for its nodes to rejoin; try again in a few seconds";
          peer.conn->Send(MessageType::kRegisterNodeReply, reply);
          return Status::Ok();
        }
        held_.emplace_back(peer.conn->tag, std::move(m));
        return Status::Ok();
      }
      Register(peer, std::move(m));
      return Status::Ok();
    }
    case MessageType::kHeartbeat: {
      protocol::Heartbeat m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (peer.node_index == 0) return Status::ProtocolError("heartbeat before registration");
      peer.conn->Send(MessageType::kHeartbeatAck, m);
      return Status::Ok();
    }
    case MessageType::kResourceUpdate: {
      protocol::ResourceUpdate m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (peer.node_index == 0 || m.node_index != peer.node_index) {
        return Status::ProtocolError("resource update for a node this connection did not register");
      }
      if (nodes_.UpdateResources(m.node_index, std::move(m.available), std::move(m.total))) {
        view_changed_.insert(m.node_index);
        if (!view_flush_scheduled_) {
          view_flush_scheduled_ = true;
          loop_->RunAfter(kResourceViewBatch, [this] { FlushResourceView(); });
        }
      }
      return Status::Ok();
    }
    case MessageType::kRegisterFunction: {
      if (peer.node_index == 0) return Status::ProtocolError("function registration before node registration");
      protocol::RegisterFunction m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      functions_.emplace(std::move(m.function_id), std::move(m.payload));
      return Status::Ok();
    }
    case MessageType::kCreatePlacementGroup: {
      if (peer.node_index == 0) return Status::ProtocolError("placement group from an unregistered connection");
      protocol::PlacementGroupSpec m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      Status st = groups_.Create(std::move(m));
      if (!st.ok()) QLOG(kWarning) << "placement group refused: " << st.message();
      return Status::Ok();
    }
    case MessageType::kRemovePlacementGroup: {
      if (peer.node_index == 0) return Status::ProtocolError("placement group from an unregistered connection");
      protocol::PlacementGroupQuery m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      groups_.Remove(m.id, "removed with remove_placement_group()");
      return Status::Ok();
    }
    case MessageType::kGetPlacementGroups: {
      protocol::PlacementGroupQuery m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      peer.conn->Send(MessageType::kPlacementGroups, protocol::PlacementGroups{m.request_id, groups_.Query(m)});
      return Status::Ok();
    }
    case MessageType::kBundlesReserved: {
      if (peer.node_index == 0) return Status::ProtocolError("bundle answer from an unregistered connection");
      protocol::BundlesReserved m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      groups_.OnReserved(peer.node_index, m);
      return Status::Ok();
    }
    case MessageType::kJobStarted: {
      if (peer.node_index == 0) return Status::ProtocolError("job report from an unregistered connection");
      protocol::JobInfo m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (static_cast<uint32_t>(m.job_id >> 32) != peer.node_index) {
        return Status::ProtocolError("job report for a driver of another node");
      }
      m.node_index = peer.node_index;
      m.start_time_ms = NowMs();
      m.status = protocol::JobStatus::kRunning;
      jobs_.Started(std::move(m));
      return Status::Ok();
    }
    case MessageType::kJobFinished: {
      if (peer.node_index == 0) return Status::ProtocolError("job report from an unregistered connection");
      protocol::RequestId m;  // the job id
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (static_cast<uint32_t>(m.request_id >> 32) != peer.node_index) {
        return Status::ProtocolError("job report for a driver of another node");
      }
      EndJob(m.request_id);
      return Status::Ok();
    }
    case MessageType::kActorUpdate: {
      if (peer.node_index == 0) return Status::ProtocolError("actor report from an unregistered connection");
      protocol::ActorInfo m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      std::string out;
      std::vector<uint32_t> subscribers = actors_.Update(m);
      if (const protocol::ActorInfo* stored = actors_.Find(m.actor_id)) {
        protocol::AppendMessage(&out, MessageType::kActorUpdate, *stored);
        for (uint32_t node : subscribers) SendToNode(node, MessageType::kActorUpdate, out);
      }
      return Status::Ok();
    }
    case MessageType::kSubscribeActor: {
      if (peer.node_index == 0) return Status::ProtocolError("subscription from an unregistered connection");
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      for (const auto& id : m.ids) {
        protocol::ActorInfo info = actors_.Subscribe(peer.node_index, id);
        if (info.state == protocol::ActorInfo::State::kUnknown) {
          // Not reported yet. Its owner's report is on the way unless the owner is not (or no
          // longer) in the cluster: then no such actor exists.
          uint32_t owner = static_cast<uint32_t>(id.Creator() >> 32);
          const protocol::NodeInfo* node = nodes_.Find(owner);
          if (node == nullptr || !node->alive) {
            info.state = protocol::ActorInfo::State::kDead;
            info.owner_node = owner;
            info.death_reason = "no actor with id " + id.Hex() + " exists in this cluster (node " +
                                std::to_string(owner) + ", which would have created it, is not alive)";
            std::string out;
            protocol::AppendMessage(&out, MessageType::kActorUpdate, info);
            for (uint32_t n : actors_.Update(info)) {
              if (n != peer.node_index) SendToNode(n, MessageType::kActorUpdate, out);
            }
          }
        }
        peer.conn->Send(MessageType::kActorUpdate, info);
      }
      return Status::Ok();
    }
    case MessageType::kTaskEvents: {
      if (peer.node_index == 0) return Status::ProtocolError("task events from an unregistered connection");
      return tasks_.ApplyEncoded(frame.body, peer.node_index);
    }
    case MessageType::kControlRequest: {
      protocol::ControlRequest m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (peer.node_index == 0 && peer.channel != net::Channel::kTool) {
        return Status::ProtocolError("request from an unregistered connection");
      }
      peer.conn->Send(MessageType::kControlReply, Serve(m));
      return Status::Ok();
    }
    case MessageType::kGetClusterInfo: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      protocol::ClusterInfo reply;
      reply.request_id = m.request_id;
      reply.nodes = nodes_.All();
      peer.conn->Send(MessageType::kClusterInfo, reply);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type));
  }
}

void ControlServer::Register(Peer& peer, protocol::RegisterNode m) {
  protocol::RegisterNodeReply reply;
  reply.cluster_id = cluster_id_;
  reply.heartbeat_interval_ms = static_cast<uint32_t>(options_.heartbeat_interval.count());
  reply.heartbeat_timeout_ms = static_cast<uint32_t>(options_.heartbeat_timeout.count());
  reply.reconnect_timeout_ms = store_ ? static_cast<uint32_t>(options_.node_reconnect_timeout.count()) : 0;
  if (m.node.start_time_ms == 0) m.node.start_time_ms = NowMs();
  bool rejoin = m.node.node_index != 0;
  auto registered = nodes_.Register(std::move(m.node), NodeTable::Clock::now());
  if (!registered.ok()) {
    reply.error = registered.status().message();
    QLOG(kWarning) << "refused the registration of a node from " << peer.name << ": " << reply.error;
    peer.conn->Send(MessageType::kRegisterNodeReply, reply);
    return;
  }
  const protocol::NodeInfo& info = *registered.value();
  auto old = node_conn_.find(info.node_index);
  if (old != node_conn_.end() && old->second != peer.conn->tag) {
    // A rejoin while its old connection still looks open here: the new one replaces it.
    auto stale = peers_.find(old->second);
    if (stale != peers_.end()) {
      stale->second.node_index = 0;
      stale->second.conn->CloseSoon(Status::Cancelled("replaced by the node's new connection"));
    }
  }
  peer.node_index = info.node_index;
  node_conn_[info.node_index] = peer.conn->tag;
  peer.conn->SetMaxFrameBody(protocol::kMaxFrameBody);
  reply.ok = true;
  reply.node_index = info.node_index;
  reply.incarnation = info.incarnation;
  QLOG(kInfo) << "node " << info.node_id << " (index " << info.node_index << ") registered from " << peer.name
              << " at " << info.address << ":" << info.port;
  peer.conn->Send(MessageType::kRegisterNodeReply, reply);
  if (rejoin) {
    // Bundles it may hold of groups that were being placed when the head went down.
    for (const ObjectID& group : groups_.StaleGroups()) {
      peer.conn->Send(MessageType::kReturnBundles, protocol::BundleReservation{group, {}, false});
    }
  }
  protocol::NodeTable full{true, nodes_.All()};
  peer.conn->Send(MessageType::kNodeTable, full);
  BroadcastToNodes(MessageType::kNodeTable, protocol::NodeTable{false, {info}}, info.node_index);
  if (rejoin) ReleaseHeld();
}

void ControlServer::ReleaseHeld() {
  if (held_.empty() || nodes_.num_awaiting_rejoin() > 0) return;
  auto held = std::move(held_);
  held_.clear();
  for (auto& [conn_id, m] : held) {
    auto it = peers_.find(conn_id);
    if (it != peers_.end() && it->second.node_index == 0) Register(it->second, std::move(m));
  }
}

void ControlServer::SendToNode(uint32_t node, MessageType, const std::string& frame) {
  auto conn = node_conn_.find(node);
  if (conn == node_conn_.end()) return;
  auto p = peers_.find(conn->second);
  if (p != peers_.end()) p->second.conn->SendEncoded(frame);
}

void ControlServer::EndJob(uint64_t job_id) {
  jobs_.Finished(job_id, NowMs());
  groups_.OnJobEnded(job_id);
  // Every node ends the job's work there: its tasks, its non-detached actors.
  BroadcastToNodes(MessageType::kJobFinished, protocol::RequestId{job_id});
}

protocol::ControlReply ControlServer::Serve(const protocol::ControlRequest& req) {
  using protocol::ControlOp;
  protocol::ControlReply r;
  r.request_id = req.request_id;
  r.ok = true;
  switch (req.op) {
    case ControlOp::kRegisterName: {
      if (req.arg.size() != ObjectID::kSize) {
        r.ok = false;
        r.error = "bad actor id";
        break;
      }
      Status st = actors_.RegisterName(req.key, req.value, ObjectID::FromBinary(req.arg), req.blob);
      r.ok = st.ok();
      r.error = st.message();
      break;
    }
    case ControlOp::kLookupName:
      if (const std::string* blob = actors_.LookupName(req.key, req.value)) {
        r.blob = *blob;
      } else {
        r.ok = false;
        r.error = "no actor named '" + req.value + "' in namespace '" + req.key + "'";
      }
      break;
    case ControlOp::kDropName:
      actors_.DropName(req.key, req.value);
      break;
    case ControlOp::kListNamedActors:
      r.items = actors_.ListNames(req.key, req.flag);
      break;
    case ControlOp::kKvPut: {
      auto added = kv_.Put(req.key, req.value, req.blob, req.flag);
      r.ok = added.ok();
      if (added.ok()) r.flag = added.value(); else r.error = added.status().message();
      break;
    }
    case ControlOp::kKvGet:
      if (const std::string* v = kv_.Get(req.key, req.value)) {
        r.blob = *v;
        r.flag = true;
      }
      break;
    case ControlOp::kKvExists:
      r.flag = kv_.Get(req.key, req.value) != nullptr;
      break;
    case ControlOp::kKvDelete:
      r.count = kv_.Delete(req.key, req.value, req.flag);
      break;
    case ControlOp::kKvList:
      r.items = kv_.List(req.key, req.value);
      break;
    case ControlOp::kGetJobs:
      for (const auto& j : jobs_.All()) {
        std::string enc;
        protocol::Writer w(&enc);
        j.Encode(w);
        r.items.push_back(std::move(enc));
      }
      break;
    case ControlOp::kGetActors:
      for (const auto& a : actors_.All()) {
        if (!req.arg.empty() && a.actor_id.Binary() != req.arg) continue;
        std::string enc;
        protocol::Writer w(&enc);
        a.Encode(w);
        r.items.push_back(std::move(enc));
      }
      break;
    case ControlOp::kGetTasks: {
      protocol::TaskQuery q;
      Status st = protocol::DecodeValue(req.arg, &q);
      if (!st.ok()) {
        r.ok = false;
        r.error = "bad task query: " + st.message();
        break;
      }
      for (const protocol::TaskRecord& t : tasks_.Query(q, &r.count)) r.items.push_back(protocol::EncodeValue(t));
      r.blob = protocol::EncodeValue(tasks_.Stats());
      break;
    }
    case ControlOp::kSummarizeTasks:
      for (const auto& row : tasks_.Summarize()) r.items.push_back(protocol::EncodeValue(row));
      r.blob = protocol::EncodeValue(tasks_.Stats());
      break;
    case ControlOp::kGetTransfers:
      for (const auto& t : tasks_.transfers()) r.items.push_back(protocol::EncodeValue(t));
      r.count = r.items.size();
      r.blob = protocol::EncodeValue(tasks_.Stats());
      break;
    case ControlOp::kGetFunction: {
      auto it = functions_.find(req.value);
      if (it == functions_.end()) {
        r.ok = false;
        r.error = "no function with that id is registered";
      } else {
        r.blob = it->second;
      }
      break;
    }
    default:
      r.ok = false;
      r.error = "unknown request";
  }
  return r;
}

void ControlServer::EverySecond() {
  loop_->RunAfter(std::chrono::milliseconds(1000), [this] { EverySecond(); });
  groups_.Retry();
}

void ControlServer::FlushResourceView() {
  view_flush_scheduled_ = false;
  if (view_changed_.empty()) return;
  groups_.Retry();  // resources changed: a pending placement group may fit now
  protocol::ResourceView view;
  for (uint32_t index : view_changed_) {
    if (const protocol::NodeInfo* n = nodes_.Find(index); n != nullptr && n->alive) {
      view.nodes.push_back({index, n->available, n->total});
    }
  }
  view_changed_.clear();
  BroadcastToNodes(MessageType::kResourceView, view);
}

void ControlServer::DeclareDead(uint32_t index, const std::string& reason) {
  if (!nodes_.MarkDead(index, reason)) return;
  const protocol::NodeInfo* info = nodes_.Find(index);
  QLOG(kWarning) << "node " << info->node_id << " (index " << index << ") declared dead: " << reason;
  auto conn = node_conn_.find(index);
  if (conn != node_conn_.end()) {
    auto p = peers_.find(conn->second);
    if (p != peers_.end()) {
      // If it is alive after all (a partition), it must stop: its work is being failed over.
      p->second.conn->Send(MessageType::kDrainNode, protocol::DrainNode{reason});
      p->second.node_index = 0;
      p->second.conn->CloseSoon(Status::Cancelled("declared dead"));
    }
    node_conn_.erase(conn);
  }
  view_changed_.erase(index);
  BroadcastToNodes(MessageType::kNodeTable, protocol::NodeTable{false, {*info}});
  groups_.OnNodeDead(index);
  auto alive = [this](uint32_t node) {
    const protocol::NodeInfo* n = nodes_.Find(node);
    return n != nullptr && n->alive;
  };
  for (const auto& [node, update] : actors_.OnNodeDead(index, reason, alive)) {
    std::string frame;
    protocol::AppendMessage(&frame, MessageType::kActorUpdate, update);
    SendToNode(node, MessageType::kActorUpdate, frame);
  }
  // Drivers on the dead node are gone: their jobs end everywhere.
  for (uint64_t job : jobs_.OnNodeDead(index, NowMs())) EndJob(job);
  ReleaseHeld();  // it may have been the last node a restarted head waited for
}

void ControlServer::CheckHeartbeats() {
  auto period = std::max(std::chrono::milliseconds(50), options_.heartbeat_timeout / 8);
  loop_->RunAfter(period, [this] { CheckHeartbeats(); });
  for (uint32_t index : nodes_.Silent(NodeTable::Clock::now(), options_.heartbeat_timeout)) {
    if (nodes_.AwaitingRejoin(index)) {
      DeclareDead(index, "it did not rejoin the restarted head within " +
                             std::to_string(options_.rejoin_grace.count()) + " ms (--rejoin-grace-ms)");
      continue;
    }
    DeclareDead(index, "no heartbeat for " + std::to_string(options_.heartbeat_timeout.count()) +
                           " ms (its host is down or unreachable)");
  }
}

void ControlServer::OnClosed(uint64_t conn_id, const Status& why) {
  auto it = peers_.find(conn_id);
  if (it == peers_.end()) return;
  uint32_t index = it->second.node_index;
  std::string name = it->second.name;
  peers_.erase(it);
  if (index != 0 && !shutting_down_) {
    auto conn = node_conn_.find(index);
    if (conn != node_conn_.end() && conn->second == conn_id) {
      node_conn_.erase(conn);
      DeclareDead(index, "its connection to the control service closed (" + why.message() + ")");
    }
  }
}

}  // namespace quanta
