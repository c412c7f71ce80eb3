// The control service: the cluster's metadata (nodes and their resources, registered
// functions; later actors, named actors and a key-value store).
//
// Node daemons connect, register themselves, report their available resources and forward
// function registrations so that any node can run any function. A node whose connection
// drops is marked dead. Clients ask for the node table with GetClusterInfo.
//
// Ownership: owns its connections. Thread-safety: loop thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/connection.h"
#include "net/event_loop.h"

namespace quanta {

class ControlServer {
 public:
  ControlServer(net::EventLoop* loop, std::string socket_path, int lifeline_fd);
  Status Start();
  void Shutdown(const std::string& why);

  size_t num_functions() const { return functions_.size(); }

 private:
  void OnAccept();
  Status Handle(net::Connection& conn, const protocol::Frame& frame);
  void OnClosed(uint64_t conn_id);

  net::EventLoop* loop_;
  std::string socket_path_;
  int lifeline_fd_;
  int listen_fd_ = -1;
  uint64_t next_conn_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<net::Connection>> conns_;
  std::unordered_map<uint64_t, std::string> conn_node_;  // connection -> node id
  std::map<std::string, protocol::NodeInfo> nodes_;
  std::unordered_map<std::string, std::string> functions_;
  bool shutting_down_ = false;
};

}  // namespace quanta
