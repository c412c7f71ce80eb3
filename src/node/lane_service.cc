#include "node/lane_service.h"

#include "common/logging.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using Lane = ActorRouter::Callbacks::Lane;

LaneService::LaneService(Components c, bool enabled)
    : c_(c),
      enabled_(enabled),
      lanes_(c.loop, 0,
             ActorLanes::Callbacks{
                 [this](uint32_t node, std::function<void(Result<int>)> done) { c_.peers->OpenLane(node, std::move(done)); },
                 [this](const ObjectID& actor) { c_.router->Pump(actor); },
                 [this](protocol::TaskDone done) { OnDone(std::move(done)); },
                 [this](const ObjectID& actor, std::vector<TaskID> in_flight, const Status& why) {
                   c_.router->OnLaneBroken(actor, in_flight, why.message());
                 }}),
      acceptor_(c.loop, [this](const protocol::LaneHello& h, int fd) { return Attach(h, fd); }) {
  if (c_.token != nullptr) ticket_key_ = std::make_unique<net::HmacKey>(c_.token->secret);
}

std::string LaneService::Ticket(const TaskID& task, const ObjectID& actor) const {
  std::string data = "quanta lane call";
  data.append(reinterpret_cast<const char*>(task.bytes.data()), ObjectID::kSize);
  data.append(reinterpret_cast<const char*>(actor.bytes.data()), ObjectID::kSize);
  return ticket_key_->Sign(data).substr(0, 16);
}

bool LaneService::Eligible(const Task& task) const {
  const protocol::TaskSpec& s = task.spec;
  if (!enabled_ || c_.token == nullptr || s.kind != protocol::TaskKind::kActorMethod || s.generator != protocol::TaskSpec::kNoGenerator ||
      s.retry_exceptions || s.timeout_ms != 0 || !s.function_id.empty()) {
    return false;
  }
  // The one ref a call may carry is its actor's own (the handle's), which keeps the actor alive
  // until the call ran: this node holds it until the result is here, and the worker never reads it.
  for (const auto& ref : s.nested_refs) {
    if (ref.TaskId() != s.actor_id || ref.Index() != 1) return false;
  }
  for (const auto& arg : s.arg_refs) {
    const ObjectTable::Entry* e = c_.objects->Find(arg);
    if (e == nullptr || !e->sealed || e->value.kind == ObjectKind::kStored || !e->value.nested_refs.empty()) return false;
  }
  return true;
}

Lane LaneService::Route(const Task& task, uint32_t node) {
  if (!Eligible(task)) return Lane::kNo;
  if (lanes_.Ready(task.spec.actor_id, node)) return Lane::kYes;
  return lanes_.InFlight(task.spec.actor_id) >= ActorLanes::kMaxInFlight ? Lane::kWait : Lane::kNo;
}

bool LaneService::Send(Task& task, uint32_t node) {
  protocol::LaneCall lane_call;
  protocol::ExecuteTask& call = lane_call.call;
  call.spec = task.spec;
  call.args.reserve(task.spec.arg_refs.size());
  for (const auto& arg : task.spec.arg_refs) call.args.push_back(c_.objects->ValueForPeer(arg));
  lane_call.ticket = Ticket(task.spec.task_id, task.spec.actor_id);
  if (!lanes_.Send(lane_call)) return false;
  task.forwarded_to = node;  // its node's death settles it as for a forwarded call
  task.via_lane = true;
  // The actor's node never sees a lane call: this node records where it went, and its end.
  if (c_.events) {
    c_.events->Scheduled(task, node);
    auto [pid, worker_id] = lanes_.WorkerOf(task.spec.actor_id);
    c_.events->Running(task, pid, worker_id, node);  // sent to its worker, as the node route records it
  }
  return true;
}

void LaneService::OnDone(protocol::TaskDone done) {
  auto it = c_.tasks->find(done.task_id);
  if (it == c_.tasks->end() || !it->second.via_lane) return;  // settled meanwhile (its node died, cancelled)
  if (done.returns.size() != it->second.spec.num_returns) {
    c_.task_manager->Fail(done.task_id, SystemError(ObjectKind::kWorkerCrashed, "actor returned the wrong number of values"));
    return;
  }
  if (!done.error.empty()) it->second.error_text = std::move(done.error);
  c_.task_manager->Finish(done.task_id, std::move(done.returns));
}

Result<uint64_t> LaneService::Attach(const protocol::LaneHello& hello, int fd) {
  if (!enabled_ || c_.token == nullptr) return Status::Cancelled("lanes are turned off on this node (QUANTA_ACTOR_LANES=0)");
  if (hello.caller_node == c_.view->local_index() || !c_.view->IsAlive(hello.caller_node)) {
    return Status::InvalidArgument("the lane's caller node " + std::to_string(hello.caller_node) +
                                   " is not another alive node");
  }
  uint64_t worker = c_.actors->LaneWorker(hello.actor_id);
  if (worker == 0) return Status::NotFound("the actor is not alive here, or it may restart");
  LocalClient* client = c_.clients->Find(worker);
  if (client == nullptr || !client->conn || client->conn->closed()) return Status::NotFound("the actor's worker is gone");
  std::string frame;
  protocol::AppendMessage(&frame, MessageType::kLaneAttach, protocol::LaneAttach{hello.actor_id, hello.caller_node});
  QUANTA_RETURN_IF_ERROR(client->conn->SendWithFd(frame, fd));
  return worker;
}

Status LaneService::OnLaneAdopt(const LocalClient& client, protocol::LaneAdopt m) {
  const TaskID id = m.spec.task_id;
  Worker* worker = c_.dispatcher->Find(client.id);
  if (c_.token == nullptr || worker == nullptr || !worker->is_actor() || worker->actor_id != m.spec.actor_id ||
      m.spec.kind != protocol::TaskKind::kActorMethod || static_cast<uint32_t>(id.Creator() >> 32) != m.caller_node ||
      !acceptor_.Attached(client.id, m.caller_node) ||
      !net::SecureEqual(m.ticket, Ticket(id, m.spec.actor_id))) {
    return Status::ProtocolError("LaneAdopt for a call that no lane brought to this worker");
  }
  if (c_.tasks->count(id)) return Status::Ok();  // adopted already
  if (!c_.actors->AdoptLaneCall(m.spec.actor_id, client.id, id)) {
    return Status::Ok();  // the actor is going away; its worker's death settles the call at its caller
  }
  Task& task = (*c_.tasks)[id];
  task.owner = m.caller_node;
  task.retries_left = 0;  // lanes carry calls to actors that do not restart
  task.worker = client.id;
  task.deps_ready = true;
  task.spec = std::move(m.spec);
  ++calls_adopted_;
  return Status::Ok();
}

}  // namespace quanta
