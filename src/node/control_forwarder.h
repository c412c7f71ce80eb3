// Client requests the control service answers (named actors, the KV store, jobs, the actor
// directory): the node forwards them under its own request ids and routes each reply back to
// the client that asked, in the form it asked in (ActorName requests get ActorNameReply).
// A request made while the control service is unreachable is answered at once with an error.
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "node/client_registry.h"
#include "node/control_client.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class ControlForwarder {
 public:
  ControlForwarder(ClientRegistry* clients, ControlClient* control) : clients_(clients), control_(control) {}

  void OnActorName(LocalClient& client, const protocol::ActorName& msg);
  void OnRequest(LocalClient& client, protocol::ControlRequest msg);
  void OnReply(protocol::ControlReply reply);
  // Fetches a function definition for the node itself (a forwarded task without its payload).
  using FunctionDone = std::function<void(const std::string* payload)>;
  void FetchFunction(const std::string& function_id, FunctionDone done);

 private:
  struct Pending {
    uint64_t client = 0;
    uint64_t their_id = 0;
    bool actor_name = false;
    FunctionDone node_callback;  // set for the node's own requests
  };
  void Send(protocol::ControlRequest msg, Pending pending);

  ClientRegistry* clients_;
  ControlClient* control_;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
};

}  // namespace quanta
