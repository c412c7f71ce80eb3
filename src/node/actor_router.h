// Calls to actors hosted on other nodes: the caller node's side (docs/cluster-design.md §8).
//
// For every actor this node's clients call that is not hosted here, the router keeps where it
// is (from the control service's actor directory, or — for actors whose creation this node
// owns — from where it sent the creation) and the calls not sent yet, in submission order. A
// call leaves once it reaches the front and its arguments are ready; it goes straight to the
// actor's node (ForwardTask), which runs it in arrival order, so calls from one caller run in
// the order they were submitted. While the actor is pending or restarting, calls wait here;
// when it is dead, they fail with ActorDiedError and its reason.
//
// Lanes (actor_lanes.h): a call the lane may carry goes straight to the actor's worker once its
// lane is open. Calls of one actor take one route at a time — a call waits while calls sent the
// other way are unanswered — so per-caller order holds when routes change. Calls in flight on a
// lane that broke wait for the actor's fate: they fail with its death reason when it is reported
// dead, or after kLaneLimbo with ActorDiedError saying the call may or may not have run.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "node/task.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class ActorRouter {
 public:
  struct Callbacks {
    std::function<bool(const ObjectID& actor)> hosted_here;
    std::function<void(const TaskID&, const protocol::ObjectValue&)> fail;
    std::function<bool(Task&, uint32_t node)> forward;  // false: it could not be sent
    std::function<void(const ObjectID& actor)> subscribe;
    std::function<void(uint32_t node, const ObjectID& actor, bool no_restart, const std::string& reason)> kill;
    std::function<void(uint32_t node, const protocol::CancelTask&)> cancel;
    std::function<void(const std::vector<ObjectID>&)> release;  // creation pins of a dead actor
    // Its node died and it may restart: submit `creation` again (placed like a new creation).
    std::function<void(const protocol::TaskSpec& creation)> recreate;
    // It was re-created on this node: `waiting` calls (in order) go to the local actor.
    std::function<void(const ObjectID& actor, std::deque<TaskID> waiting)> adopt;
    // Lanes (all may be empty: no lanes). kYes: send it on the lane; kWait: the lane is full.
    enum class Lane { kNo, kYes, kWait };
    std::function<Lane(const Task&, uint32_t node)> lane_route;
    std::function<bool(Task&, uint32_t node)> lane_send;
    std::function<size_t(const ObjectID& actor)> lane_in_flight;
    std::function<bool(const ObjectID& actor, const protocol::CancelTask&)> lane_cancel;
    std::function<void(const ObjectID& actor, const std::string& why)> lane_close;
    std::function<void(std::chrono::milliseconds, std::function<void()>)> run_after;
  };
  static constexpr std::chrono::milliseconds kLaneLimbo{5000};

  ActorRouter(TaskTable* tasks, Callbacks callbacks) : tasks_(tasks), callbacks_(std::move(callbacks)) {}

  // The creation this node owns was sent to `node`; `waiting` are the calls submitted here so
  // far (in order), which now follow it there.
  // `pins`: the creation's argument refs this node holds until the actor is dead.
  // `creation`: the creation task, kept while the actor may restart so that it can be created
  // again elsewhere when its node dies (its host restarts it when only its process dies).
  void OnCreationPlaced(const ObjectID& actor, uint32_t node, std::deque<TaskID> waiting,
                        std::vector<ObjectID> pins, const protocol::TaskSpec& creation);
  // Objects freed here: an actor whose object (the handles' ref) went is killed, unless detached.
  void OnObjectsFreed(const std::vector<ObjectID>& freed);
  // A call to an actor not hosted here: it waits here until it can be sent.
  void OnCall(const TaskID& id);
  // A call sent to the actor's node was lost with that node: it is sent again once the actor
  // runs somewhere (ahead of the calls submitted after it), or fails if the actor is dead.
  void Retry(const TaskID& id);
  // A call sent to the actor's node or on a lane has ended (its result came, or it failed).
  void OnCallEnded(const Task& task);
  // These calls were in flight on the actor's lane when it broke.
  void OnLaneBroken(const ObjectID& actor, const std::vector<TaskID>& in_flight, const std::string& why);
  // A waiting call's arguments are ready: send what may be sent.
  void Pump(const ObjectID& actor);
  void OnActorUpdate(const protocol::ActorInfo& info);
  // kill() from a client, or every handle gone: the actor's node is told.
  void Kill(const ObjectID& actor, bool no_restart, const std::string& reason);
  // True if the call was one of ours (dropped if waiting; the host told if sent).
  bool Cancel(Task& task, const protocol::CancelTask& msg);
  // Does this router route calls to `actor` (it is not hosted here)?
  bool Routes(const ObjectID& actor) const { return actors_.count(actor) > 0; }
  std::string DeathReason(const ObjectID& actor) const;

 private:
  struct Remote {
    protocol::ActorInfo::State state = protocol::ActorInfo::State::kUnknown;
    uint32_t node = 0;            // where it is, when alive
    bool subscribed = false;
    std::deque<TaskID> waiting;   // not sent yet, in submission order
    std::unordered_set<TaskID, ObjectIDHash> via_node;  // sent to its node, unanswered
    std::unordered_set<TaskID, ObjectIDHash> limbo;     // in flight on a lane that broke
    std::string death_reason;
    bool owned = false;           // this node owns its creation
    bool detached = false;
    std::vector<ObjectID> pins;   // the creation's argument refs, held while it lives
    std::optional<protocol::TaskSpec> creation;  // owned and may restart
    bool recreating = false;      // its creation was submitted again after its node died
    bool kill_pending = false;    // kill() before it was placed
    bool kill_no_restart = true;
    std::string kill_reason;
  };
  Remote& Get(const ObjectID& actor);
  void FailAll(const ObjectID& actor, Remote& r);

  TaskTable* tasks_;
  Callbacks callbacks_;
  std::unordered_map<ObjectID, Remote, ObjectIDHash> actors_;
};

}  // namespace quanta
