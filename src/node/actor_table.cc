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

bool ActorTable::RegisterName(const std::string& ns, const std::string& name,
                              const ObjectID& actor, std::string handle_blob) {
  auto key = std::make_pair(ns, name);
  auto it = names_.find(key);
  if (it != names_.end()) {
    Actor* holder = Find(it->second.actor);
    // Unknown holder: registered but its creation task not yet seen; still taken.
    if (holder == nullptr || holder->state != Actor::State::kDead) return false;
  }
  names_[key] = NameEntry{actor, std::move(handle_blob)};
  return true;
}

const std::string* ActorTable::LookupName(const std::string& ns, const std::string& name) {
  auto it = names_.find({ns, name});
  if (it == names_.end()) return nullptr;
  Actor* a = Find(it->second.actor);
  if (a != nullptr && a->state == Actor::State::kDead) return nullptr;
  return &it->second.handle_blob;
}

void ActorTable::DropName(const std::string& ns, const std::string& name) { names_.erase({ns, name}); }

}  // namespace quanta
