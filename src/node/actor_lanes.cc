#include "node/actor_lanes.h"

#include <unistd.h>

#include "common/logging.h"
#include "protocol/lane_messages.h"

namespace quanta {

using protocol::MessageType;

ActorLanes::~ActorLanes() {
  for (auto& [actor, lane] : lanes_) {
    if (lane.conn) lane.conn->Close(Status::Cancelled("the node is stopping"));
  }
}

ActorLanes::Lane* ActorLanes::Find(const ObjectID& actor, uint64_t serial) {
  auto it = lanes_.find(actor);
  return it == lanes_.end() || it->second.serial != serial ? nullptr : &it->second;
}

bool ActorLanes::Ready(const ObjectID& actor, uint32_t node) {
  if (node == 0 || node == self_node_ || self_node_ == 0) return false;
  auto it = lanes_.find(actor);
  if (it != lanes_.end() && it->second.node == 0) return false;  // closed for good (killed)
  if (it != lanes_.end() && it->second.node == node) {
    const Lane& lane = it->second;
    return lane.state == Lane::State::kOpen && lane.in_flight.size() < kMaxInFlight;
  }
  if (it != lanes_.end()) Close(actor, Status::Cancelled("the actor is on another node now"));
  if (live_ >= kMaxLanes) return false;  // each lane is a socket here: bounded
  ++live_;
  Lane& lane = lanes_[actor];
  lane.state = Lane::State::kOpening;
  lane.node = node;
  lane.serial = next_serial_++;
  Open(actor, lane);
  return false;
}

void ActorLanes::Open(const ObjectID& actor, Lane& lane) {
  uint64_t serial = lane.serial;
  callbacks_.connect(lane.node, [this, actor, serial](Result<int> fd) { OnConnected(actor, serial, std::move(fd)); });
}

void ActorLanes::OnConnected(const ObjectID& actor, uint64_t serial, Result<int> fd) {
  Lane* lane = Find(actor, serial);
  if (lane == nullptr || !fd.ok()) {
    if (fd.ok()) ::close(fd.value());
    if (lane != nullptr) {
      ++stats_.refused;
      --live_;
      lane->state = Lane::State::kDisabled;
      QLOG(kDebug) << "no lane to actor " << actor.Hex() << ": " << fd.status().message();
      callbacks_.changed(actor);
    }
    return;
  }
  auto conn = net::Connection::Create(
      loop_, fd.value(),
      [this, actor, serial](net::Connection& c, const protocol::Frame& f) { OnFrame(actor, serial, c, f); },
      [this, actor, serial](net::Connection&, const Status& why) { OnClosed(actor, serial, why); });
  if (!conn.ok()) {
    ::close(fd.value());
    ++stats_.refused;
    --live_;
    lane->state = Lane::State::kDisabled;
    callbacks_.changed(actor);
    return;
  }
  lane->conn = conn.value();
  lane->conn->SetMaxFrameBody(4096);  // until LaneReady
  protocol::LaneHello hello{actor, self_node_};
  lane->conn->SendEncoded(hello.Encode());  // raw bytes: the actor's node reads exactly these
}

void ActorLanes::OnFrame(const ObjectID& actor, uint64_t serial, net::Connection& c, const protocol::Frame& f) {
  Lane* lane = Find(actor, serial);
  if (lane == nullptr) return;
  stats_.bytes_received += protocol::kFrameHeaderSize + f.body.size();
  auto type = static_cast<MessageType>(f.type);
  if (lane->state == Lane::State::kOpening) {
    protocol::LaneReady ready;
    Status st = type == MessageType::kLaneReady ? protocol::DecodeMessage(f.body, &ready)
                                                : Status::ProtocolError("the first frame on a lane must be LaneReady");
    if (st.ok() && ready.actor_id != actor) st = Status::ProtocolError("LaneReady names another actor");
    if (!st.ok()) {
      c.Close(st);
      return;
    }
    lane->state = Lane::State::kOpen;
    lane->worker_pid = ready.pid;
    lane->worker_id = ready.worker_id;
    c.SetMaxFrameBody(protocol::kMaxFrameBody);
    ++stats_.opened;
    callbacks_.changed(actor);
    return;
  }
  protocol::TaskDone done;
  Status st = type == MessageType::kTaskDone ? protocol::DecodeMessage(f.body, &done)
                                             : Status::ProtocolError("a worker may send only TaskDone on a lane");
  if (st.ok() && lane->in_flight.erase(done.task_id) == 0) {
    st = Status::ProtocolError("TaskDone on a lane for a call that is not in flight on it");
  }
  if (st.ok()) {
    for (const auto& v : done.returns) {
      if (v.kind == protocol::ObjectKind::kStored || !v.nested_refs.empty()) {
        st = Status::ProtocolError("a lane carries only inline results without refs");
      }
    }
  }
  if (!st.ok()) {
    QLOG(kWarning) << "closing the lane to actor " << actor.Hex() << ": " << st.message();
    lane->in_flight.insert(done.task_id);  // settled with the others
    c.Close(st);
    return;
  }
  ++stats_.results;
  callbacks_.done(std::move(done));
}

void ActorLanes::OnClosed(const ObjectID& actor, uint64_t serial, const Status& why) {
  Lane* lane = Find(actor, serial);
  if (lane == nullptr) return;
  bool was_open = lane->state == Lane::State::kOpen;
  std::vector<TaskID> in_flight(lane->in_flight.begin(), lane->in_flight.end());
  lane->in_flight.clear();
  lane->conn.reset();
  lane->state = Lane::State::kDisabled;  // not opened again to that node
  --live_;
  if (was_open) {
    ++stats_.broken;
  } else {
    ++stats_.refused;
  }
  if (!in_flight.empty()) callbacks_.broken(actor, std::move(in_flight), why);
  callbacks_.changed(actor);
}

std::pair<uint32_t, uint64_t> ActorLanes::WorkerOf(const ObjectID& actor) const {
  auto it = lanes_.find(actor);
  if (it == lanes_.end() || it->second.state != Lane::State::kOpen) return {0, 0};
  return {it->second.worker_pid, it->second.worker_id};
}

size_t ActorLanes::InFlight(const ObjectID& actor) const {
  auto it = lanes_.find(actor);
  return it == lanes_.end() ? 0 : it->second.in_flight.size();
}

bool ActorLanes::Send(const protocol::LaneCall& lane_call) {
  const protocol::ExecuteTask& call = lane_call.call;
  auto it = lanes_.find(call.spec.actor_id);
  if (it == lanes_.end() || it->second.state != Lane::State::kOpen || !it->second.conn ||
      it->second.conn->closed()) {
    return false;
  }
  it->second.in_flight.insert(call.spec.task_id);
  ++stats_.calls;
  std::string frame;
  protocol::AppendMessage(&frame, MessageType::kLaneCall, lane_call);
  stats_.bytes_sent += frame.size();
  it->second.conn->SendEncoded(frame);
  return true;
}

bool ActorLanes::Cancel(const ObjectID& actor, const protocol::CancelTask& msg) {
  auto it = lanes_.find(actor);
  if (it == lanes_.end() || !it->second.conn || !it->second.in_flight.count(msg.object_id.TaskId())) return false;
  it->second.conn->Send(MessageType::kCancelTask, msg);
  return true;
}

void ActorLanes::Close(const ObjectID& actor, const Status& why) {
  auto it = lanes_.find(actor);
  if (it == lanes_.end()) {  // never opened: none may open now either
    Lane& lane = lanes_[actor];
    lane.state = Lane::State::kDisabled;
    lane.serial = next_serial_++;
    lane.node = 0;
    return;
  }
  Lane& lane = it->second;
  std::vector<TaskID> in_flight(lane.in_flight.begin(), lane.in_flight.end());
  lane.in_flight.clear();
  if (lane.state != Lane::State::kDisabled) --live_;
  lane.state = Lane::State::kDisabled;  // kept: a lane reopened now could overtake what closed it
  lane.serial = next_serial_++;         // its close handler finds no lane of the old serial
  std::shared_ptr<net::Connection> conn = std::move(lane.conn);
  if (conn) conn->Close(why);
  if (!in_flight.empty()) callbacks_.broken(actor, std::move(in_flight), why);
}


}  // namespace quanta
