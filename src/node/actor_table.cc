#include "node/actor_table.h"

namespace quanta {

Actor& ActorTable::Create(const protocol::TaskSpec& creation) {
  Actor& a = actors_[creation.task_id];
  a.id = creation.task_id;
  a.creation = creation;
  a.restarts_left = creation.actor.max_restarts;
  return a;
}

Actor* ActorTable::Find(const ObjectID& id) {
  auto it = actors_.find(id);
  return it == actors_.end() ? nullptr : &it->second;
}

}  // namespace quanta
