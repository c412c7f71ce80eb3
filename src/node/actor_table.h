// State of the actors on this node and the named-actor registry.
//
// An actor is identified by its creation task's id; the "actor object" (the creation task's
// first return) is what every ActorHandle references, so the actor's lifetime follows the
// ordinary reference counting of objects: when the last handle anywhere is dropped, the object
// is freed and a non-detached actor is terminated.
//
// Method calls are kept in one FIFO per actor, in arrival order; a call is sent to the actor's
// worker once it reaches the front and its arguments are available, so calls from one caller
// run in submission order. The worker enforces max_concurrency.
//
// Names are the control service's (control/actor_directory.h); an actor here only remembers
// its own.
//
// Dead actors stay in the table (so late calls get the death reason); that is a few hundred
// bytes per actor for the node's lifetime.
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

struct Actor {
  enum class State { kPending, kAlive, kRestarting, kDead };
  ObjectID id;
  State state = State::kPending;
  protocol::TaskSpec creation;  // kept to restart the actor
  uint64_t worker = 0;          // client id of its worker while placed
  int restarts_left = 0;
  std::string death_reason;
  // What its calls fail with once it is dead: kActorDied, or kUnschedulable when its creation
  // could never be placed (Ray's ActorUnschedulableError).
  protocol::ObjectKind death_kind = protocol::ObjectKind::kActorDied;
  std::deque<TaskID> queue;             // calls not yet sent to the worker, in order
  std::unordered_set<TaskID, ObjectIDHash> in_flight;
  std::string name, name_space;         // if named
  // When its creation was forwarded here by another node (its owner): the argument values it
  // came with, kept to restart it.
  uint32_t owner = 0;
  std::vector<protocol::ObjectValue> remote_args;
};

class ActorTable {
 public:
  Actor& Create(const protocol::TaskSpec& creation);
  Actor* Find(const ObjectID& id);
  void Erase(const ObjectID& id) { actors_.erase(id); }


  size_t size() const { return actors_.size(); }
  template <typename F>
  void ForEach(F&& f) {
    for (auto& [id, a] : actors_) f(a);
  }

 private:
  std::unordered_map<ObjectID, Actor, ObjectIDHash> actors_;
};

}  // namespace quanta
