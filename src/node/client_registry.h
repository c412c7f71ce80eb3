// The node's local clients: drivers and workers connected over its Unix socket.
//
// Accepts connections, checks the peer's credentials before reading a byte from it
// (SO_PEERCRED: only processes of the node's own user may connect), assigns each a client id
// and hands its frames to the message handler. The handler decides what a client may do; this
// class only knows who is connected, in which role, and how to reach them.
//
// Ownership: owns the listening socket and every client connection. Thread-safety: loop thread only.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/connection.h"
#include "net/event_loop.h"
#include "net/listener.h"

namespace quanta {

struct LocalClient {
  uint64_t id = 0;
  std::shared_ptr<net::Connection> conn;
  pid_t pid = 0;               // from the kernel (SO_PEERCRED), not from the client
  bool said_hello = false;
  protocol::ClientRole role = protocol::ClientRole::kDriver;
  bool log_to_driver = true;
  bool is_driver() const { return said_hello && role == protocol::ClientRole::kDriver; }
  bool is_worker() const { return said_hello && role == protocol::ClientRole::kWorker; }
};

class ClientRegistry {
 public:
  using MessageHandler = std::function<void(LocalClient&, const protocol::Frame&)>;
  // Called once per client after its connection closed; the client is already unregistered.
  using ClosedHandler = std::function<void(const LocalClient&, const Status& why)>;

  // `first_client_id`: ids are handed out from it upwards (its high 32 bits name the node).
  ClientRegistry(net::EventLoop* loop, uint64_t first_client_id, MessageHandler on_message,
                 ClosedHandler on_closed);

  // Client ids are handed out from `first` upwards; its high 32 bits name the node, so this is
  // set once the node knows its index, before it listens.
  void SetFirstClientId(uint64_t first) { next_id_ = first; }
  // Listens on a Unix socket at `path` (mode 0600).
  Status Listen(const std::string& path);
  void StopListening();

  LocalClient* Find(uint64_t id);
  template <typename F>
  void ForEach(F&& f) {
    for (auto& [id, c] : clients_) f(c);
  }
  // Sends a Warning to every connected driver.
  void WarnDrivers(const std::string& text);
  size_t size() const { return clients_.size(); }

 private:
  void OnAccept(int fd);
  void OnClosed(uint64_t id, const Status& why);

  net::EventLoop* loop_;
  uint64_t next_id_;
  MessageHandler on_message_;
  ClosedHandler on_closed_;
  std::unique_ptr<net::Listener> listener_;
  // All local clients together may have this much output queued before those holding more than
  // their share stop being read (a single client's own limit is the connection's).
  std::shared_ptr<net::OutputBudget> output_budget_ = std::make_shared<net::OutputBudget>(64u << 20);
  std::unordered_map<uint64_t, LocalClient> clients_;
};

}  // namespace quanta
