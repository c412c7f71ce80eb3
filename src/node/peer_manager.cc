#include "node/peer_manager.h"

#include <unistd.h>

#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

namespace {
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(5000);
constexpr size_t kMaxPendingHandshakes = 1024;
constexpr size_t kMaxQueuedWhileConnecting = 256u << 20;
constexpr uint32_t kMaxFrameBeforeHello = 4096;
}  // namespace

PeerManager::PeerManager(net::EventLoop* loop, const net::ClusterToken* token, const ClusterView* view,
                         Callbacks callbacks)
    : loop_(loop), token_(token), view_(view), callbacks_(std::move(callbacks)) {
  if (token_ != nullptr) {
    handshakes_ = std::make_unique<net::HandshakeDriver>(loop_, token_, kHandshakeTimeout, kMaxPendingHandshakes);
  }
}

PeerManager::~PeerManager() = default;

Status PeerManager::Listen(const std::string& host, uint16_t port) {
  if (!handshakes_) return Status::InvalidArgument("a node listening for peers needs the cluster token");
  auto l = net::Listener::Tcp(loop_, host, port, [this](int fd) {
    net::TuneTcp(fd);
    std::string peer = net::PeerName(fd);
    handshakes_->Accept(fd, peer, [this, peer](Result<int> done, net::Channel channel) {
      if (!done.ok()) {
        ++stats_.refused;
        QLOG(kWarning) << "refused a connection from " << peer << ": " << done.status().message();
        return;
      }
      OnAccepted(done.value(), channel, peer);
    });
  });
  if (!l.ok()) return l.status();
  listener_ = std::move(l).value();
  return Status::Ok();
}

void PeerManager::OnAccepted(int fd, net::Channel channel, const std::string& peer) {
  if (channel == net::Channel::kData) {
    if (callbacks_.on_data_channel) {
      callbacks_.on_data_channel(fd, peer);
    } else {
      ::close(fd);
    }
    return;
  }
  if (channel == net::Channel::kLane) {
    if (callbacks_.on_lane_channel) {
      callbacks_.on_lane_channel(fd, peer);
    } else {
      ::close(fd);
    }
    return;
  }
  if (channel != net::Channel::kPeer) {
    QLOG(kWarning) << "refused a " << net::ChannelName(channel) << " connection from " << peer
                   << ": a node serves peer, data and lane channels only";
    ::close(fd);
    return;
  }
  uint64_t id = next_inbound_++;
  auto conn = net::Connection::Create(
      loop_, fd,
      [this, peer](net::Connection& c, const protocol::Frame& f) {
        auto it = inbound_.find(c.tag);
        if (it == inbound_.end()) return;
        ++stats_.frames_received;
        stats_.bytes_received += f.body.size() + protocol::kFrameHeaderSize;
        if (it->second.from == 0) {
          protocol::PeerHello hello;
          Status st = f.type == static_cast<uint16_t>(MessageType::kPeerHello)
                          ? protocol::DecodeMessage(f.body, &hello)
                          : Status::ProtocolError("the first frame on a peer channel must be PeerHello");
          if (st.ok() && (hello.node_index == 0 || hello.cluster_id != self_.cluster_id)) {
            st = Status::ProtocolError("PeerHello from a node of another cluster");
          }
          if (st.ok() && !view_->IsAlive(hello.node_index)) {
            st = Status::ProtocolError("PeerHello from node " + std::to_string(hello.node_index) +
                                       ", which is not an alive member of this cluster");
          }
          if (!st.ok()) {
            QLOG(kWarning) << "closing a peer channel from " << peer << ": " << st.message();
            c.Close(st);
            return;
          }
          it->second.from = hello.node_index;
          c.SetMaxFrameBody(protocol::kMaxFrameBody);
          return;
        }
        callbacks_.on_message(it->second.from, f);
      },
      [this, id](net::Connection&, const Status&) { inbound_.erase(id); });
  if (!conn.ok()) {
    ::close(fd);
    return;
  }
  conn.value()->tag = id;
  conn.value()->SetMaxFrameBody(kMaxFrameBeforeHello);
  inbound_[id].conn = conn.value();
}

void PeerManager::SendEncoded(uint32_t to, const std::string& frames) {
  if (callbacks_.before_send && !in_before_send_) {
    in_before_send_ = true;
    callbacks_.before_send();
    in_before_send_ = false;
  }
  Outbound& out = outbound_[to];
  ++stats_.frames_sent;
  stats_.bytes_sent += frames.size();
  if (out.conn && !out.conn->closed()) {
    out.conn->SendEncoded(frames);
    return;
  }
  if (out.queued.size() + frames.size() > kMaxQueuedWhileConnecting) {
    Fail(to, Status::ResourceExhausted("more than " + std::to_string(kMaxQueuedWhileConnecting >> 20) +
                                       " MiB queued for a peer that does not accept the connection"));
    return;
  }
  out.queued += frames;
  if (!out.connecting) Open(to);
}

void PeerManager::Connect(uint32_t to, net::Channel channel, std::function<void(Result<int>)> done) {
  const protocol::NodeInfo* info = view_->Find(to);
  if (info == nullptr || !info->alive || info->port == 0 || info->address.empty() || !handshakes_) {
    done(Status::NotFound("node " + std::to_string(to) + " is not reachable (unknown, dead, or local-only)"));
    return;
  }
  auto fd = net::ConnectTcpNonBlocking(info->address, static_cast<uint16_t>(info->port));
  if (!fd.ok()) {
    done(fd.status());
    return;
  }
  if (channel == net::Channel::kPeer) ++stats_.connects;
  std::string name = info->address + ":" + std::to_string(info->port);
  handshakes_->Connect(fd.value(), name, channel,
                       [done = std::move(done)](Result<int> r, net::Channel) { done(std::move(r)); });
}

void PeerManager::Open(uint32_t to) {
  outbound_[to].connecting = true;
  Connect(to, net::Channel::kPeer, [this, to](Result<int> done) {
    if (!done.ok()) {
      Fail(to, done.status());
      return;
    }
    OnOpened(to, done.value());
  });
}

void PeerManager::OpenLane(uint32_t to, std::function<void(Result<int>)> done) {
  Connect(to, net::Channel::kLane, std::move(done));
}

void PeerManager::OnOpened(uint32_t to, int fd) {
  auto it = outbound_.find(to);
  if (it == outbound_.end()) {
    ::close(fd);
    return;
  }
  Outbound& out = it->second;
  auto conn = net::Connection::Create(
      loop_, fd, [](net::Connection&, const protocol::Frame&) {},  // outbound channels are send-only
      [this, to](net::Connection&, const Status& why) {
        auto o = outbound_.find(to);
        if (o == outbound_.end() || (o->second.conn && !o->second.conn->closed())) return;
        Fail(to, why);
      });
  if (!conn.ok()) {
    ::close(fd);
    Fail(to, conn.status());
    return;
  }
  out.conn = conn.value();
  out.connecting = false;
  out.conn->Send(MessageType::kPeerHello, self_);
  out.conn->SendEncoded(out.queued);
  out.queued.clear();
  out.queued.shrink_to_fit();
}

void PeerManager::Fail(uint32_t to, const Status& why) {
  auto it = outbound_.find(to);
  if (it != outbound_.end()) outbound_.erase(it);
  QLOG(kWarning) << "peer node " << to << " unreachable: " << why.message();
  // Reported from the loop: the sender that hit the failure may be in the middle of a loop
  // over its own state.
  if (callbacks_.on_unreachable) {
    auto cb = callbacks_.on_unreachable;
    loop_->RunAfter(std::chrono::milliseconds(0), [cb, to, why] { cb(to, why); });
  }
}

void PeerManager::Forget(uint32_t peer) {
  auto it = outbound_.find(peer);
  if (it != outbound_.end()) {
    if (it->second.conn) it->second.conn->CloseSoon(Status::Cancelled("the peer left the cluster"));
    outbound_.erase(it);
  }
  for (auto& [id, in] : inbound_) {
    if (in.from == peer) in.conn->CloseSoon(Status::Cancelled("the peer left the cluster"));
  }
}

}  // namespace quanta
