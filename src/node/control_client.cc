#include "node/control_client.h"

#include <unistd.h>

#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

namespace {
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(5000);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
constexpr auto kReportEvery = std::chrono::milliseconds(50);
constexpr size_t kMaxOutboxBytes = 64u << 20;
// Waiting for a head that persists its tables: retry more often, it is expected back.
constexpr auto kMaxBackoffWaiting = std::chrono::milliseconds(500);
}  // namespace

void ControlClient::Queue(std::string frame) {
  if (outbox_bytes_ + frame.size() > kMaxOutboxBytes) {
    if (!outbox_full_logged_) {
      QLOG(kWarning) << "dropping messages for the control service: 64 MiB already wait for it to come back";
      outbox_full_logged_ = true;
    }
    return;
  }
  outbox_bytes_ += frame.size();
  outbox_.push_back(std::move(frame));
}

void ControlClient::GiveUpWaiting(uint64_t loss) {
  if (loss != losses_ || !waiting_ || connected() || shutting_down_) return;
  waiting_ = false;
  outbox_.clear();
  outbox_bytes_ = 0;
  std::string why = "the head's control service at " + address() + " has been unreachable for " +
                    std::to_string(reconnect_timeout_.count()) + " ms; restart it with the same --storage, "
                    "or start a new cluster";
  QLOG(kError) << why << " (this node keeps serving local work and keeps trying to reconnect)";
  if (on_head_gone_) on_head_gone_(why);
}

ControlClient::ControlClient(net::EventLoop* loop, Options options, const net::ClusterToken* token, ClusterView* view,
                             const FunctionTable* functions, Callbacks callbacks)
    : loop_(loop),
      options_(std::move(options)),
      token_(token),
      view_(view),
      functions_(functions),
      callbacks_(std::move(callbacks)) {
  if (token_ != nullptr) handshakes_ = std::make_unique<net::HandshakeDriver>(loop_, token_, kHandshakeTimeout, 16);
}

std::string ControlClient::address() const {
  return options_.socket_path.empty() ? options_.host + ":" + std::to_string(options_.port) : options_.socket_path;
}

void ControlClient::Start() {
  started_ = std::chrono::steady_clock::now();
  Connect();
}

void ControlClient::Connect() {
  if (shutting_down_) return;
  ++generation_;
  if (!options_.socket_path.empty()) {
    auto fd = net::ConnectUnix(options_.socket_path, true);
    if (!fd.ok()) {
      OnConnectFailed(fd.status());
      return;
    }
    OnConnected(fd.value());
    return;
  }
  if (!handshakes_) {
    OnConnectFailed(Status::InvalidArgument("no cluster token to join " + address() + " with: set " +
                                            net::ClusterToken::Sources()));
    return;
  }
  auto fd = net::ConnectTcpNonBlocking(options_.host, options_.port);
  if (!fd.ok()) {
    OnConnectFailed(fd.status());
    return;
  }
  uint64_t gen = generation_;
  handshakes_->Connect(fd.value(), address(), net::Channel::kControl, [this, gen](Result<int> done, net::Channel) {
    if (gen != generation_) {
      if (done.ok()) ::close(done.value());
      return;
    }
    if (!done.ok()) {
      OnConnectFailed(done.status());
      return;
    }
    OnConnected(done.value());
  });
}

void ControlClient::OnConnectFailed(const Status& why) {
  if (shutting_down_) return;
  bool fatal = why.code() == StatusCode::kInvalidArgument || why.code() == StatusCode::kProtocolError;
  if (!joined_once_) {
    bool expired = std::chrono::steady_clock::now() - started_ >= options_.join_timeout;
    if (fatal || expired) {
      std::string what = fatal ? why.message()
                               : why.message() + " (gave up after " + std::to_string(options_.join_timeout.count()) + " ms)";
      callbacks_.on_refused("could not join the cluster at " + address() + ": " + what);
      return;
    }
  } else {
    QLOG(kWarning) << "cannot reach the control service at " << address() << ": " << why.message()
                   << "; retrying in " << backoff_.count() << " ms";
  }
  loop_->RunAfter(backoff_, [this] { Connect(); });
  backoff_ = std::min(waiting_ ? kMaxBackoffWaiting : kMaxBackoff, backoff_ * 2);
}

void ControlClient::OnConnected(int fd) {
  auto conn = net::Connection::Create(
      loop_, fd, [this](net::Connection&, const protocol::Frame& f) { OnMessage(f); },
      [this](net::Connection&, const Status& why) { OnLost(why.message()); });
  if (!conn.ok()) {
    ::close(fd);
    OnConnectFailed(conn.status());
    return;
  }
  conn_ = conn.value();
  last_heard_ = std::chrono::steady_clock::now();
  protocol::NodeInfo info = callbacks_.local_info();
  info.node_index = node_index_;  // 0 the first time; afterwards a rejoin
  conn_->Send(MessageType::kRegisterNode, protocol::RegisterNode{info});
}

void ControlClient::OnLost(const std::string& why) {
  bool was_registered = registered_;
  registered_ = false;
  conn_.reset();
  if (shutting_down_) return;
  if (!joined_once_) {
    OnConnectFailed(Status::IOError("the control service closed the connection: " + why));
    return;
  }
  if (was_registered) {
    QLOG(kWarning) << "lost the control service at " << address() << ": " << why << "; reconnecting";
    if (reconnect_timeout_.count() > 0) {
      // The head keeps its tables: wait for it, bounded, queueing what needs it.
      waiting_ = true;
      uint64_t loss = ++losses_;
      loop_->RunAfter(reconnect_timeout_, [this, loss] { GiveUpWaiting(loss); });
    }
  }
  backoff_ = std::chrono::milliseconds(100);
  loop_->RunAfter(backoff_, [this] { Connect(); });
}

void ControlClient::OnMessage(const protocol::Frame& frame) {
  last_heard_ = std::chrono::steady_clock::now();
  auto type = static_cast<MessageType>(frame.type);
  Status st;
  switch (type) {
    case MessageType::kRegisterNodeReply: {
      protocol::RegisterNodeReply m;
      st = protocol::DecodeMessage(frame.body, &m);
      if (!st.ok()) break;
      if (!m.ok) {
        if (!joined_once_) {
          callbacks_.on_refused("the control service at " + address() + " refused this node: " + m.error);
        } else {
          callbacks_.on_drain("the control service refused this node's rejoin: " + m.error);
        }
        Shutdown();
        return;
      }
      registered_ = true;
      backoff_ = std::chrono::milliseconds(100);
      node_index_ = m.node_index;
      cluster_id_ = m.cluster_id;
      heartbeat_interval_ = std::chrono::milliseconds(m.heartbeat_interval_ms);
      heartbeat_timeout_ = std::chrono::milliseconds(m.heartbeat_timeout_ms);
      reconnect_timeout_ = std::chrono::milliseconds(m.reconnect_timeout_ms);
      view_->set_local_index(node_index_);
      functions_->ForEach([this](const std::string& id, const std::string& payload) {
        conn_->Send(MessageType::kRegisterFunction, protocol::RegisterFunction{id, payload});
      });
      last_reported_.clear();
      last_total_.clear();
      if (!joined_once_) {
        joined_once_ = true;
        callbacks_.on_joined(m);
      } else {
        QLOG(kInfo) << "rejoined the cluster at " << address() << " as node index " << node_index_ << "; sending "
                    << outbox_.size() << " queued messages";
        for (const auto& f : outbox_) conn_->SendEncoded(f);
        outbox_.clear();
        outbox_bytes_ = 0;
        outbox_full_logged_ = false;
        waiting_ = false;
        if (on_rejoined_) on_rejoined_();
      }
      Heartbeat();
      break;
    }
    case MessageType::kHeartbeatAck:
      break;
    case MessageType::kNodeTable: {
      protocol::NodeTable m;
      st = protocol::DecodeMessage(frame.body, &m);
      if (st.ok()) view_->ApplyNodeTable(m);
      break;
    }
    case MessageType::kResourceView: {
      protocol::ResourceView m;
      st = protocol::DecodeMessage(frame.body, &m);
      if (st.ok()) view_->ApplyResourceView(m);
      break;
    }
    case MessageType::kDrainNode: {
      protocol::DrainNode m;
      st = protocol::DecodeMessage(frame.body, &m);
      if (st.ok()) {
        callbacks_.on_drain("the control service declared this node dead: " + m.reason);
        Shutdown();
      }
      return;
    }
    case MessageType::kPlacementGroups:
    case MessageType::kReserveBundles:
    case MessageType::kReturnBundles:
    case MessageType::kActorUpdate:
    case MessageType::kControlReply:
    case MessageType::kJobFinished:
      if (on_other_) on_other_(frame);
      break;
    default:
      st = Status::ProtocolError("unexpected message type " + std::to_string(frame.type) + " from the control service");
  }
  if (!st.ok()) {
    QLOG(kError) << "bad message from the control service: " << st.ToString();
    if (conn_) conn_->Close(st);
  }
}

void ControlClient::Heartbeat() {
  if (!connected() || shutting_down_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_sent_ > 2 * heartbeat_interval_ + std::chrono::milliseconds(100)) {
    // This timer ran late: our own loop was held (e.g. by a slow disk), so the control
    // service's answers may be waiting unread in the socket. Judge its silence from now on.
    last_heard_ = std::max(last_heard_, now - heartbeat_interval_);
  }
  if (now - last_heard_ > heartbeat_timeout_) {
    // The control service (or its host, or the network to it) went silent without closing.
    conn_->Close(Status::TimedOut("no answer from the control service for " +
                                  std::to_string(heartbeat_timeout_.count()) + " ms"));
    return;
  }
  conn_->Send(MessageType::kHeartbeat, protocol::Heartbeat{node_index_, ++heartbeat_seq_});
  last_sent_ = now;
  uint64_t gen = generation_;
  loop_->RunAfter(heartbeat_interval_, [this, gen] {
    if (gen == generation_) Heartbeat();
  });
}

void ControlClient::Pulse() {
  if (!connected() || shutting_down_) return;
  auto now = std::chrono::steady_clock::now();
  // While our caller holds the loop, the control service's answers wait unread in the socket:
  // its silence cannot be judged over this time.
  last_heard_ = std::max(last_heard_, now - heartbeat_interval_);
  if (now - last_sent_ < heartbeat_interval_) return;
  conn_->Send(MessageType::kHeartbeat, protocol::Heartbeat{node_index_, ++heartbeat_seq_});
  conn_->Flush();
  last_sent_ = now;
}

void ControlClient::ReportResources(const protocol::ResourceMap& available, const protocol::ResourceMap& total) {
  pending_report_ = available;
  pending_total_ = total;
  if (report_scheduled_ || !connected() || (available == last_reported_ && total == last_total_)) return;
  report_scheduled_ = true;
  loop_->RunAfter(kReportEvery, [this] { FlushResources(); });
}

void ControlClient::FlushResources() {
  report_scheduled_ = false;
  if (!connected() || (pending_report_ == last_reported_ && pending_total_ == last_total_)) return;
  last_reported_ = pending_report_;
  last_total_ = pending_total_;
  conn_->Send(MessageType::kResourceUpdate, protocol::ResourceUpdate{node_index_, last_reported_, last_total_});
}

void ControlClient::RegisterFunction(const std::string& id, const std::string& payload) {
  if (connected()) conn_->Send(MessageType::kRegisterFunction, protocol::RegisterFunction{id, payload});
}

}  // namespace quanta
