// The node's connection to the control service: registration, resource reports, functions.
//
// Connects (retrying every 50 ms until it can), registers the node with its info, and then
// reports the node's available resources whenever they changed (at most once per loop
// iteration) and forwards every new function so any node can fetch it.
//
// Ownership: owned by the NodeServer; owns its connection. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "net/connection.h"
#include "net/event_loop.h"
#include "node/function_table.h"

namespace quanta {

class ControlClient {
 public:
  using InfoSource = std::function<protocol::NodeInfo()>;

  ControlClient(net::EventLoop* loop, std::string control_socket, InfoSource info, const FunctionTable* functions);

  void Connect();
  void Shutdown() { shutting_down_ = true; }
  void ReportResources(const protocol::ResourceMap& available);
  void RegisterFunction(const std::string& id, const std::string& payload);
  bool connected() const { return conn_ && !conn_->closed(); }

 private:
  net::EventLoop* loop_;
  std::string control_socket_;
  InfoSource info_;
  const FunctionTable* functions_;
  std::shared_ptr<net::Connection> conn_;
  protocol::ResourceMap last_reported_;
  bool shutting_down_ = false;
};

}  // namespace quanta
