// The control service: the cluster's metadata, and the one place that decides which nodes are
// alive (docs/cluster-design.md §9-10).
//
// Nodes connect (a Unix socket on the head's host, authenticated TCP from anywhere else),
// register (getting their node index), send heartbeats and report their available resources.
// The service broadcasts every change of the node table at once and the resource view in
// batches; it declares a node dead when its connection closes or when it has been silent for
// the heartbeat timeout. Tools (quanta status) may connect on the tool channel and only read.
//
// With a TableStore (`--storage`), its tables are written through and reloaded at start: the
// nodes that were alive then get `rejoin_grace` to reconnect under their index before they are
// declared dead, and nodes are told (RegisterNodeReply.reconnect_timeout_ms) to wait that long for
// a head that went away, queueing what needs it (docs/cluster-design.md §11). New nodes that
// register meanwhile are answered once the old ones are back or declared dead.
//
// Ownership: owns its listeners, connections, tables and store. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/actor_directory.h"
#include "control/job_table.h"
#include "control/kv_store.h"
#include "control/node_table.h"
#include "control/placement_groups.h"
#include "control/table_store.h"
#include "control/task_event_table.h"
#include "net/auth.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "net/handshake.h"
#include "net/listener.h"

namespace quanta {

struct ControlOptions {
  std::string session_dir;
  std::string socket_path;     // Unix socket for daemons and tools on this host
  std::string tcp_host;        // with tcp_port >= 0: also listen on TCP (needs the token)
  int tcp_port = -1;           // 0: any free port
  int lifeline_fd = -1;
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{3000};
  std::chrono::milliseconds rejoin_grace{10000};            // with a store: for nodes after a restart
  std::chrono::milliseconds node_reconnect_timeout{60000};  // with a store: how long nodes wait for us
  size_t max_task_rows = 100000;  // rows of the task table (QUANTA_TASK_EVENTS_MAX_TASKS)
};

class ControlServer {
 public:
  // `store` may be null: the tables live in memory only.
  ControlServer(net::EventLoop* loop, ControlOptions options, std::unique_ptr<TableStore> store = nullptr);
  Status Start();
  void Shutdown(const std::string& why);

  uint16_t tcp_port() const { return tcp_ ? tcp_->port() : 0; }
  size_t num_functions() const { return functions_.size(); }

 private:
  struct Peer {
    std::shared_ptr<net::Connection> conn;
    net::Channel channel = net::Channel::kControl;
    std::string name;        // address or "local", for logs
    uint32_t node_index = 0;  // once registered
  };
  void Adopt(int fd, net::Channel channel, std::string name);
  Status Handle(Peer& peer, const protocol::Frame& frame);
  void OnClosed(uint64_t conn_id, const Status& why);
  void DeclareDead(uint32_t index, const std::string& reason);
  void CheckHeartbeats();
  template <typename M>
  void BroadcastToNodes(protocol::MessageType type, const M& msg, uint32_t except = 0);
  void FlushResourceView();
  protocol::ControlReply Serve(const protocol::ControlRequest& req);
  void SendToNode(uint32_t node, protocol::MessageType type, const std::string& frame);
  void EndJob(uint64_t job_id);
  void EverySecond();
  Status Restore();
  void Register(Peer& peer, protocol::RegisterNode m);
  void ReleaseHeld();

  net::EventLoop* loop_;
  ControlOptions options_;
  uint64_t cluster_id_;
  std::unique_ptr<net::ClusterToken> token_;  // only with a TCP listener
  std::unique_ptr<net::Listener> unix_;
  std::unique_ptr<net::Listener> tcp_;
  std::unique_ptr<net::HandshakeDriver> handshakes_;
  uint64_t next_conn_id_ = 1;
  std::unordered_map<uint64_t, Peer> peers_;
  std::unordered_map<uint32_t, uint64_t> node_conn_;  // node index -> connection id
  std::unique_ptr<TableStore> store_;  // before the tables, which hold a pointer to it
  NodeTable nodes_;
  PlacementGroupManager groups_;
  ActorDirectory actors_;
  KvStore kv_;
  JobTable jobs_;
  TaskEventTable tasks_;
  std::set<uint32_t> view_changed_;  // nodes whose resources changed since the last broadcast
  bool view_flush_scheduled_ = false;
  std::unordered_map<std::string, std::string> functions_;
  // New nodes' registrations held while a restarted head waits for its old nodes: (conn, message).
  std::vector<std::pair<uint64_t, protocol::RegisterNode>> held_;
  bool shutting_down_ = false;
};

}  // namespace quanta
