#include "node/control_forwarder.h"

namespace quanta {

using protocol::ControlOp;
using protocol::MessageType;

namespace {
constexpr size_t kMaxWaiting = 10000;
}

void ControlForwarder::Send(protocol::ControlRequest msg, Pending pending) {
  uint64_t ours = next_id_++;
  msg.request_id = ours;
  bool connected = control_->connected();
  if (!connected && !control_->waiting_for_head()) {
    pending_[ours] = std::move(pending);
    Fail(ours, control_->head_persists()
                   ? "the control service is unreachable right now (the head has been down longer than its nodes "
                     "wait for it; restart it with the same --storage); try again once it is back"
                   : "the control service is unreachable right now (the head may be down; started without --storage "
                     "it keeps no tables and cannot come back); try again");
    return;
  }
  if (!connected && pending_.size() >= kMaxWaiting) {
    pending_[ours] = std::move(pending);
    Fail(ours, "the control service is unreachable right now and 10000 requests already wait for it; try again");
    return;
  }
  if (connected) control_->Send(MessageType::kControlRequest, msg);
  pending.request = std::move(msg);
  pending_[ours] = std::move(pending);
}

void ControlForwarder::Fail(uint64_t ours, const std::string& why) {
  protocol::ControlReply reply;
  reply.request_id = ours;
  reply.error = why;
  OnReply(std::move(reply));
}

void ControlForwarder::OnRejoined() {
  for (const auto& [ours, p] : pending_) control_->Send(MessageType::kControlRequest, p.request);
}

void ControlForwarder::OnHeadGone(const std::string& why) {
  std::vector<uint64_t> ids;
  for (const auto& [ours, p] : pending_) ids.push_back(ours);
  for (uint64_t id : ids) Fail(id, "the control service is unreachable: " + why);
}

void ControlForwarder::OnActorName(LocalClient& client, const protocol::ActorName& msg) {
  protocol::ControlRequest req;
  switch (msg.op) {
    case protocol::ActorNameOp::kRegister: req.op = ControlOp::kRegisterName; break;
    case protocol::ActorNameOp::kLookup: req.op = ControlOp::kLookupName; break;
    case protocol::ActorNameOp::kUnregister: req.op = ControlOp::kDropName; break;
  }
  req.key = msg.name_space;
  req.value = msg.name;
  req.arg = msg.actor_id.Binary();
  req.blob = msg.handle_blob;
  Send(std::move(req), Pending{client.id, msg.request_id, true, nullptr, {}});
}

void ControlForwarder::OnRequest(LocalClient& client, protocol::ControlRequest msg) {
  uint64_t theirs = msg.request_id;
  Send(std::move(msg), Pending{client.id, theirs, false, nullptr, {}});
}

void ControlForwarder::FetchFunction(const std::string& function_id, FunctionDone done) {
  protocol::ControlRequest req;
  req.op = ControlOp::kGetFunction;
  req.value = function_id;
  Send(std::move(req), Pending{0, 0, false, std::move(done), {}});
}

void ControlForwarder::OnReply(protocol::ControlReply reply) {
  auto it = pending_.find(reply.request_id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.node_callback) {
    p.node_callback(reply.ok ? &reply.blob : nullptr);
    return;
  }
  LocalClient* client = clients_->Find(p.client);
  if (client == nullptr) return;
  if (p.actor_name) {
    protocol::ActorNameReply r;
    r.request_id = p.their_id;
    r.ok = reply.ok;
    r.handle_blob = std::move(reply.blob);
    r.error = std::move(reply.error);
    client->conn->Send(MessageType::kActorNameReply, r);
    return;
  }
  reply.request_id = p.their_id;
  client->conn->Send(MessageType::kControlReply, reply);
}

Status ControlForwarder::OnPlacementGroupRequest(LocalClient& client, MessageType type, const protocol::Frame& frame) {
  if (type == MessageType::kCreatePlacementGroup) {
    protocol::PlacementGroupSpec m;
    QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
    if (m.id.Creator() != client.id) return Status::ProtocolError("placement group id not minted by this client");
    control_->Send(type, m);
    return Status::Ok();
  }
  protocol::PlacementGroupQuery m;
  QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
  if (type == MessageType::kGetPlacementGroups) {
    if (!control_->connected() && !control_->waiting_for_head()) {
      // Answer at once (empty) rather than leave the caller waiting for a reconnection.
      client.conn->Send(MessageType::kPlacementGroups, protocol::PlacementGroups{m.request_id, {}});
      return Status::Ok();
    }
    uint64_t ours = next_group_query_++;
    group_queries_[ours] = {client.id, m.request_id};
    m.request_id = ours;
  }
  control_->Send(type, m);
  return Status::Ok();
}

void ControlForwarder::OnPlacementGroups(protocol::PlacementGroups m) {
  auto it = group_queries_.find(m.request_id);
  if (it == group_queries_.end()) return;
  auto [client_id, their_id] = it->second;
  group_queries_.erase(it);
  m.request_id = their_id;
  if (LocalClient* c = clients_->Find(client_id)) c->conn->Send(MessageType::kPlacementGroups, m);
}

}  // namespace quanta
