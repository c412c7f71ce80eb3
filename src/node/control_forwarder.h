// Client requests the control service answers (named actors, the KV store, jobs, the actor
// directory, placement groups): the node forwards them under its own request ids and routes each reply back to
// the client that asked, in the form it asked in (ActorName requests get ActorNameReply).
// A request made while the control service is unreachable is answered at once with an error —
// unless the head persists its tables and may come back (ControlClient::waiting_for_head): then
// it waits (at most 10,000 requests), and every request not answered yet, including those sent
// to the head that went away, is sent again once the node rejoined (so one may be applied twice:
// at least once). If the head does not come back in time, they fail with the reason.
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
  // The node rejoined a restarted head: send every unanswered request again.
  void OnRejoined();
  // The head did not come back in time: fail every unanswered request with `why`.
  void OnHeadGone(const std::string& why);
  // Fetches a function definition for the node itself (a forwarded task without its payload).
  using FunctionDone = std::function<void(const std::string* payload)>;
  void FetchFunction(const std::string& function_id, FunctionDone done);
  // Placement groups: a client's create/remove/get is relayed; a get's answer is routed back.
  Status OnPlacementGroupRequest(LocalClient& client, protocol::MessageType type, const protocol::Frame& frame);
  void OnPlacementGroups(protocol::PlacementGroups reply);

 private:
  struct Pending {
    uint64_t client = 0;
    uint64_t their_id = 0;
    bool actor_name = false;
    FunctionDone node_callback;  // set for the node's own requests
    protocol::ControlRequest request;  // kept to send again after a head restart
  };
  void Send(protocol::ControlRequest msg, Pending pending);
  void Fail(uint64_t ours, const std::string& why);

  ClientRegistry* clients_;
  ControlClient* control_;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
  // Placement-group queries: our request id -> (client, its request id).
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> group_queries_;
  uint64_t next_group_query_ = 1;
};

}  // namespace quanta
