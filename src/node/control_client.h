// The node's link to the control service: joining, heartbeats, resource reports, and the
// node-table and resource-view broadcasts it receives.
//
// Connects over the head host's Unix socket, or over authenticated TCP (net/handshake.h), and
// registers the node. The first registration must succeed within the join timeout: a wrong
// token or protocol version fails at once, an unreachable head after the timeout (on_refused).
// Once joined, it sends a heartbeat every interval and expects the control service's answers;
// if the connection drops or goes silent for the heartbeat timeout, it reconnects with backoff
// and rejoins under the node's index. Told that it was declared dead (DrainNode), or refused a
// rejoin, the node must stop (on_drain).
//
// A head that persists its tables (RegisterNodeReply.reconnect_timeout_ms > 0) can take the node
// back after it restarts: for that long after losing it, it retries every <= 500 ms (not 2 s),
// messages sent are queued (at most
// 64 MiB; beyond that they are dropped, with a warning) and sent once the node rejoined, then
// on_rejoined runs. If the head is not back by then, on_head_gone runs (and queueing stops until
// it is back). Without persistence, messages sent while disconnected are dropped.
//
// Ownership: owned by the NodeServer; owns its connection. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/auth.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "net/handshake.h"
#include "node/cluster_view.h"
#include "node/function_table.h"

namespace quanta {

class ControlClient {
 public:
  struct Options {
    std::string socket_path;   // Unix socket of a control service on this host, or
    std::string host;          // TCP host and port of a remote one
    uint16_t port = 0;
    std::chrono::milliseconds join_timeout{5000};
  };
  struct Callbacks {
    std::function<protocol::NodeInfo()> local_info;
    std::function<void(const protocol::RegisterNodeReply&)> on_joined;  // first registration
    std::function<void(const std::string& why)> on_refused;            // the first join failed
    std::function<void(const std::string& why)> on_drain;              // declared dead: stop
  };

  ControlClient(net::EventLoop* loop, Options options, const net::ClusterToken* token, ClusterView* view,
                const FunctionTable* functions, Callbacks callbacks);

  void Start();
  void Shutdown() { shutting_down_ = true; }
  // Reported at most every 50 ms, and only if they changed.
  void ReportResources(const protocol::ResourceMap& available, const protocol::ResourceMap& total);
  // Sends a message to the control service (dropped while disconnected).
  template <typename M>
  void Send(protocol::MessageType type, const M& msg) {
    if (connected()) {
      conn_->Send(type, msg);
    } else if (waiting_for_head()) {
      std::string frame;
      protocol::AppendMessage(&frame, type, msg);
      Queue(std::move(frame));
    }
  }
  // Sends a heartbeat at once if one is due, and writes it out: for code that holds the loop
  // thread for long (a spill to a slow disk), so the control service does not think us gone.
  void Pulse();
  // Lost a head that persists its tables, and still within the time to wait for it.
  bool waiting_for_head() const { return !connected() && waiting_; }
  // The head said it persists its tables (so it can come back and take this node back).
  bool head_persists() const { return reconnect_timeout_.count() > 0; }
  void set_on_rejoined(std::function<void()> cb) { on_rejoined_ = std::move(cb); }
  void set_on_head_gone(std::function<void(const std::string&)> cb) { on_head_gone_ = std::move(cb); }
  // Messages this class does not handle itself (placement groups).
  void set_on_message(std::function<void(const protocol::Frame&)> cb) { on_other_ = std::move(cb); }
  void RegisterFunction(const std::string& id, const std::string& payload);
  bool connected() const { return registered_ && conn_ && !conn_->closed(); }
  uint32_t node_index() const { return node_index_; }
  uint64_t cluster_id() const { return cluster_id_; }
  std::string address() const;

 private:
  void Connect();
  void OnConnected(int fd);
  void OnConnectFailed(const Status& why);
  void OnMessage(const protocol::Frame& frame);
  void OnLost(const std::string& why);
  void Heartbeat();
  void FlushResources();
  void Queue(std::string frame);
  void GiveUpWaiting(uint64_t loss);

  net::EventLoop* loop_;
  Options options_;
  const net::ClusterToken* token_;
  ClusterView* view_;
  const FunctionTable* functions_;
  Callbacks callbacks_;
  std::unique_ptr<net::HandshakeDriver> handshakes_;
  std::shared_ptr<net::Connection> conn_;
  bool registered_ = false;
  bool joined_once_ = false;
  bool shutting_down_ = false;
  uint32_t node_index_ = 0;
  uint64_t cluster_id_ = 0;
  std::chrono::milliseconds heartbeat_interval_{500};
  std::chrono::milliseconds heartbeat_timeout_{3000};
  std::chrono::steady_clock::time_point started_, last_heard_, last_sent_;
  std::chrono::milliseconds backoff_{100};
  uint64_t heartbeat_seq_ = 0;
  uint64_t generation_ = 0;  // connections opened; timers of an old one stand down
  protocol::ResourceMap last_reported_, pending_report_, last_total_, pending_total_;
  std::function<void(const protocol::Frame&)> on_other_;
  std::function<void()> on_rejoined_;
  std::function<void(const std::string&)> on_head_gone_;
  std::chrono::milliseconds reconnect_timeout_{0};  // from the head; 0: it keeps no tables
  bool waiting_ = false;                            // queueing for a head we lost
  uint64_t losses_ = 0;                             // times the head was lost
  std::vector<std::string> outbox_;                 // encoded frames queued while waiting
  size_t outbox_bytes_ = 0;
  bool outbox_full_logged_ = false;
  bool report_scheduled_ = false;
};

}  // namespace quanta
