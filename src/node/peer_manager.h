// Connections between this node and the other nodes of the cluster.
//
// A node sends to a peer only over the connection it opened to it (its outbound channel), and
// only reads from the connections peers opened to it (docs/cluster-design.md §1): every
// (sender, receiver) pair is one FIFO channel, which the reference-counting protocol relies
// on. Outbound channels are opened lazily, the first time there is something to send: TCP
// connect, the authenticated handshake (channel "peer"), then a PeerHello naming this node.
// Messages sent while connecting wait in a bounded queue; a peer that cannot be reached, or
// whose channel breaks, is reported through on_unreachable (the control service decides
// whether it is dead).
//
// The listener also accepts "data" channels (object bytes, part of object transfer) and "lane"
// channels (a caller's node to an actor's worker) and hands them to on_data_channel and
// on_lane_channel. It opens lanes too (OpenLane), as it opens peer channels.
//
// Ownership: owns its listener and every peer connection. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/auth.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "net/handshake.h"
#include "net/listener.h"
#include "node/cluster_view.h"
#include "protocol/peer_messages.h"

namespace quanta {

class PeerManager {
 public:
  struct Callbacks {
    std::function<void(uint32_t from, const protocol::Frame&)> on_message;
    // Called before every direct send: batched messages queued earlier must go first.
    std::function<void()> before_send;
    std::function<void(uint32_t peer, const Status& why)> on_unreachable;
    std::function<void(int fd, const std::string& peer)> on_data_channel;
    std::function<void(int fd, const std::string& peer)> on_lane_channel;  // actor lanes (lane_acceptor.h)
  };
  struct Stats {
    uint64_t bytes_sent = 0, bytes_received = 0, frames_sent = 0, frames_received = 0;
    uint64_t connects = 0, refused = 0;
  };

  PeerManager(net::EventLoop* loop, const net::ClusterToken* token, const ClusterView* view, Callbacks callbacks);
  ~PeerManager();

  // Listens for peers on host:port (port 0: any free port).
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const { return listener_ ? listener_->port() : 0; }
  void SetSelf(const protocol::PeerHello& self) { self_ = self; }

  template <typename M>
  void Send(uint32_t to, protocol::MessageType type, const M& msg) {
    std::string frame;
    protocol::AppendMessage(&frame, type, msg);
    SendEncoded(to, frame);
  }
  void SendEncoded(uint32_t to, const std::string& frames);
  // Connects to node `to` and completes the handshake for a lane; `done` gets the socket or why not.
  void OpenLane(uint32_t to, std::function<void(Result<int>)> done);
  // Drops both channels of a node that left the cluster.
  void Forget(uint32_t peer);
  const Stats& stats() const { return stats_; }

 private:
  struct Outbound {
    std::shared_ptr<net::Connection> conn;
    bool connecting = false;
    std::string queued;  // frames waiting for the channel to open
  };
  void Open(uint32_t to);
  // TCP connect to node `to` and the handshake on `channel`; `done` gets the socket or why not.
  void Connect(uint32_t to, net::Channel channel, std::function<void(Result<int>)> done);
  void OnOpened(uint32_t to, int fd);
  void Fail(uint32_t to, const Status& why);
  void OnAccepted(int fd, net::Channel channel, const std::string& peer);

  net::EventLoop* loop_;
  const net::ClusterToken* token_;
  const ClusterView* view_;
  Callbacks callbacks_;
  protocol::PeerHello self_;
  std::unique_ptr<net::Listener> listener_;
  std::unique_ptr<net::HandshakeDriver> handshakes_;
  std::unordered_map<uint32_t, Outbound> outbound_;
  struct Inbound {
    std::shared_ptr<net::Connection> conn;
    uint32_t from = 0;  // set by its PeerHello
  };
  std::unordered_map<uint64_t, Inbound> inbound_;
  uint64_t next_inbound_ = 1;
  bool in_before_send_ = false;
  Stats stats_;
};

}  // namespace quanta
