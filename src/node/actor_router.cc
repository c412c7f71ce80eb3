#include "node/actor_router.h"

#include <algorithm>

#include "common/logging.h"

namespace quanta {

using protocol::ObjectKind;
using State = protocol::ActorInfo::State;

ActorRouter::Remote& ActorRouter::Get(const ObjectID& actor) {
  Remote& r = actors_[actor];
  if (!r.subscribed) {
    r.subscribed = true;
    callbacks_.subscribe(actor);
  }
  return r;
}

void ActorRouter::OnCreationPlaced(const ObjectID& actor, uint32_t node, std::deque<TaskID> waiting,
                                   std::vector<ObjectID> pins, const protocol::TaskSpec& creation) {
  Remote& r = Get(actor);
  r.owned = true;
  r.detached = creation.actor.detached;
  if (!r.pins.empty()) callbacks_.release(std::move(r.pins));  // an earlier placement's
  r.pins = std::move(pins);
  r.recreating = false;
  if (creation.actor.max_restarts != 0) {
    r.creation = creation;
    r.creation->nested_refs.clear();  // held through `pins`
  } else {
    r.creation.reset();
  }
  if (r.state == State::kDead) {
    callbacks_.release(std::move(r.pins));
    return;
  }
  r.node = node;
  r.state = State::kPending;
  for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) r.waiting.push_front(*it);
  if (r.kill_pending) {
    r.kill_pending = false;
    callbacks_.kill(node, actor, r.kill_no_restart, r.kill_reason);
  }
  Pump(actor);
}

void ActorRouter::OnCall(const TaskID& id) {
  Task& task = tasks_->at(id);
  Remote& r = Get(task.spec.actor_id);
  if (r.state == State::kDead) {
    callbacks_.fail(id, SystemError(ObjectKind::kActorDied, r.death_reason));
    return;
  }
  r.waiting.push_back(id);
}

void ActorRouter::Retry(const TaskID& id) {
  Task& task = tasks_->at(id);
  Remote& r = Get(task.spec.actor_id);
  if (r.state == State::kDead) {
    callbacks_.fail(id, SystemError(ObjectKind::kActorDied, r.death_reason));
    return;
  }
  // A caller's task ids count up with submission, so this keeps each caller's order.
  auto pos = std::find_if(r.waiting.begin(), r.waiting.end(), [&](const TaskID& other) {
    return other.Creator() == id.Creator() && other.Sequence() > id.Sequence();
  });
  r.waiting.insert(pos, id);
  r.via_node.erase(id);
  r.limbo.erase(id);
  if (r.state != State::kRestarting) r.node = 0;  // wait for the actor's next location
}

void ActorRouter::OnCallEnded(const Task& task) {
  auto it = actors_.find(task.spec.actor_id);
  if (it == actors_.end()) return;
  Remote& r = it->second;
  r.limbo.erase(task.spec.task_id);
  if (r.via_node.erase(task.spec.task_id) && r.via_node.empty() && !r.waiting.empty()) Pump(task.spec.actor_id);
  if (task.via_lane && !r.waiting.empty()) Pump(task.spec.actor_id);
}

void ActorRouter::OnLaneBroken(const ObjectID& actor, const std::vector<TaskID>& in_flight, const std::string& why) {
  auto it = actors_.find(actor);
  for (const auto& id : in_flight) {
    auto t = tasks_->find(id);
    if (t == tasks_->end() || !t->second.via_lane) continue;  // settled another way (its node died)
    if (it == actors_.end() || it->second.state == State::kDead) {
      std::string reason = it == actors_.end() ? why : it->second.death_reason;
      callbacks_.fail(id, SystemError(ObjectKind::kActorDied, reason));
      continue;
    }
    it->second.limbo.insert(id);
    if (!callbacks_.run_after) continue;
    callbacks_.run_after(kLaneLimbo, [this, actor, id, why] {
      auto a = actors_.find(actor);
      if (a == actors_.end() || !a->second.limbo.erase(id) || !tasks_->count(id)) return;
      callbacks_.fail(id, SystemError(ObjectKind::kActorDied,
                                      "the connection to the actor's worker broke while the call was in flight (" +
                                          why + ") and the actor was not reported dead; the call may or may not "
                                          "have run"));
    });
  }
}

void ActorRouter::Pump(const ObjectID& actor) {
  auto it = actors_.find(actor);
  if (it == actors_.end()) return;
  Remote& r = it->second;
  if (r.state == State::kDead) {
    FailAll(actor, r);
    return;
  }
  // Sent once the actor's node is known (it queues calls while the actor is being created).
  if (r.node == 0 || r.state == State::kRestarting) return;
  while (!r.waiting.empty()) {
    auto t = tasks_->find(r.waiting.front());
    if (t == tasks_->end()) {  // failed or cancelled meanwhile
      r.waiting.pop_front();
      continue;
    }
    if (!t->second.deps_ready) break;  // keep submission order
    // A lane only to a live actor: its node turns a lane away while the actor is being created.
    auto lane = callbacks_.lane_route && r.state == State::kAlive ? callbacks_.lane_route(t->second, r.node)
                                                                  : Callbacks::Lane::kNo;
    if (lane == Callbacks::Lane::kWait) break;
    // One route at a time: a call does not overtake calls sent the other way.
    if (lane == Callbacks::Lane::kYes ? !r.via_node.empty() : callbacks_.lane_in_flight && callbacks_.lane_in_flight(actor) > 0) {
      break;
    }
    TaskID id = r.waiting.front();
    r.waiting.pop_front();
    if (lane == Callbacks::Lane::kYes && callbacks_.lane_send(t->second, r.node)) continue;
    r.via_node.insert(id);
    if (!callbacks_.forward(t->second, r.node)) {
      r.via_node.erase(id);
      callbacks_.fail(id, SystemError(ObjectKind::kActorDied, "the call to the actor could not be sent to its node " +
                                                                  std::to_string(r.node)));
    }
  }
}

void ActorRouter::FailAll(const ObjectID& actor, Remote& r) {
  std::deque<TaskID> waiting = std::move(r.waiting);
  r.waiting.clear();
  waiting.insert(waiting.end(), r.limbo.begin(), r.limbo.end());
  r.limbo.clear();
  std::string reason = r.death_reason;
  if (callbacks_.lane_close) callbacks_.lane_close(actor, reason);  // its calls in flight come back as broken
  for (const auto& id : waiting) {
    if (tasks_->count(id)) callbacks_.fail(id, SystemError(ObjectKind::kActorDied, reason));
  }
}

void ActorRouter::OnActorUpdate(const protocol::ActorInfo& info) {
  auto it = actors_.find(info.actor_id);
  if (it == actors_.end()) return;
  Remote& r = it->second;
  if (r.state == State::kDead) return;
  switch (info.state) {
    case State::kUnknown:
      return;  // nothing known yet: the owner's placement or a later report tells
    case State::kPending:
    case State::kAlive:
      if (info.node_index != 0 && callbacks_.hosted_here(info.actor_id)) {
        // Re-created on this node after its node died: the local actor takes the calls over.
        std::deque<TaskID> waiting = std::move(r.waiting);
        if (!r.pins.empty()) callbacks_.release(std::move(r.pins));  // the local creation pins its own
        actors_.erase(it);
        callbacks_.adopt(info.actor_id, std::move(waiting));
        return;
      }
      if (info.node_index != 0) {
        r.node = info.node_index;
        r.state = info.state;
        if (r.kill_pending) {
          r.kill_pending = false;
          callbacks_.kill(r.node, info.actor_id, r.kill_no_restart, r.kill_reason);
        }
      }
      break;
    case State::kRestarting:
      r.state = State::kRestarting;
      if (info.node_index == 0 && r.creation && !r.recreating) {
        // Its node died (the directory says so with no host): this node, its owner, creates it
        // again, with the restarts its last host had left minus this one.
        r.node = 0;
        r.recreating = true;
        int32_t& max = r.creation->actor.max_restarts;
        if (max > 0) max = std::max(0, max - static_cast<int32_t>(info.restarts) - 1);
        QLOG(kInfo) << "re-creating actor " << r.creation->actor.class_name << " (" << info.actor_id.Hex()
                    << "): " << info.death_reason;
        callbacks_.recreate(*r.creation);
      }
      break;
    case State::kDead:
      r.state = State::kDead;
      r.death_reason = info.death_reason.empty() ? "the actor " + info.class_name + " died" : info.death_reason;
      if (!r.pins.empty()) callbacks_.release(std::move(r.pins));
      r.pins.clear();
      break;
  }
  Pump(info.actor_id);
}

void ActorRouter::Kill(const ObjectID& actor, bool no_restart, const std::string& reason) {
  Remote& r = Get(actor);
  if (r.state == State::kDead) return;
  // Calls after kill() must not overtake it: they go the kill's way (the actor's node, one FIFO
  // channel) from now on; the lane's calls in flight share the actor's fate.
  if (callbacks_.lane_close) callbacks_.lane_close(actor, "the actor was killed");
  if (r.node == 0) {  // not placed yet: killed as soon as it is
    r.kill_pending = true;
    r.kill_no_restart = no_restart;
    r.kill_reason = reason;
    return;
  }
  callbacks_.kill(r.node, actor, no_restart, reason);
}

bool ActorRouter::Cancel(Task& task, const protocol::CancelTask& msg) {
  auto it = actors_.find(task.spec.actor_id);
  if (it == actors_.end()) return false;
  Remote& r = it->second;
  auto w = std::find(r.waiting.begin(), r.waiting.end(), task.spec.task_id);
  if (w != r.waiting.end()) {
    r.waiting.erase(w);
    callbacks_.fail(task.spec.task_id, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
    return true;
  }
  if (task.via_lane) return callbacks_.lane_cancel && callbacks_.lane_cancel(task.spec.actor_id, msg);
  if (task.forwarded_to != 0) {
    callbacks_.cancel(task.forwarded_to, msg);
    return true;
  }
  return false;
}

void ActorRouter::OnObjectsFreed(const std::vector<ObjectID>& freed) {
  for (const auto& id : freed) {
    if (id.Index() != 1) continue;  // actor objects are creation returns (index 1)
    auto it = actors_.find(id.TaskId());
    if (it == actors_.end() || !it->second.owned || it->second.detached) continue;
    Kill(id.TaskId(), true, "the actor was terminated because every handle to it went out of scope");
  }
}

std::string ActorRouter::DeathReason(const ObjectID& actor) const {
  auto it = actors_.find(actor);
  return it == actors_.end() ? "" : it->second.death_reason;
}

}  // namespace quanta
