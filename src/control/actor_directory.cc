#include "control/actor_directory.h"

namespace quanta {

using State = protocol::ActorInfo::State;

std::vector<uint32_t> ActorDirectory::Update(const protocol::ActorInfo& info) {
  Entry& e = actors_[info.actor_id];
  if (e.info.state == State::kDead && info.state != State::kDead) {
    // Dead is final: a late report from an old host does not revive it.
    return {};
  }
  if (info.state == State::kPending && info.node_index == 0 && e.info.state != State::kUnknown) {
    // The owner's "submitted, not placed yet" may arrive after the host's own report.
    return {};
  }
  std::string name = e.info.name, ns = e.info.name_space;
  e.info = info;
  if (e.info.name.empty()) {
    e.info.name = name;
    e.info.name_space = ns;
  }
  if (info.state == State::kDead) {
    for (auto it = names_.begin(); it != names_.end();) {
      it = it->second.actor == info.actor_id ? names_.erase(it) : std::next(it);
    }
  }
  return {e.subscribers.begin(), e.subscribers.end()};
}

protocol::ActorInfo ActorDirectory::Subscribe(uint32_t node, const ObjectID& actor) {
  auto it = actors_.find(actor);
  if (it == actors_.end()) {
    Entry& e = actors_[actor];
    e.info.actor_id = actor;
    e.subscribers.insert(node);
    return e.info;
  }
  it->second.subscribers.insert(node);
  return it->second.info;
}

std::vector<std::pair<uint32_t, protocol::ActorInfo>> ActorDirectory::OnNodeDead(
    uint32_t node, const std::string& reason, const std::function<bool(uint32_t)>& owner_alive) {
  std::vector<std::pair<uint32_t, protocol::ActorInfo>> out;
  for (auto& [id, e] : actors_) {
    e.subscribers.erase(node);
    if (e.info.state == State::kDead) continue;
    if (e.info.node_index == 0 && static_cast<uint32_t>(id.Creator() >> 32) == node) {
      // Not placed anywhere (not reported yet, submitted and unplaced, or restarting): only its
      // owner's node could place it, so nobody else will ever report it.
      e.info.state = State::kDead;
      std::string what = e.info.class_name.empty() ? id.Hex() : e.info.class_name;
      e.info.death_reason = "the actor " + what + " died: its owner's node (index " +
                            std::to_string(node) + ") died (" + reason + ") before it was placed";
      for (auto it = names_.begin(); it != names_.end();) {
        it = it->second.actor == id ? names_.erase(it) : std::next(it);
      }
      for (uint32_t s : e.subscribers) out.emplace_back(s, e.info);
      continue;
    }
    if (e.info.node_index != node || e.info.state == State::kUnknown) continue;
    if (e.info.restartable && e.info.owner_node != node && owner_alive(e.info.owner_node)) {
      e.info.state = State::kRestarting;
      e.info.node_index = 0;  // the owner places it again
      e.info.death_reason = "its node (index " + std::to_string(node) + ") died (" + reason + ")";
      for (uint32_t s : e.subscribers) out.emplace_back(s, e.info);
      continue;
    }
    e.info.state = State::kDead;
    e.info.death_reason = "the actor " + e.info.class_name + " died: its node (index " + std::to_string(node) +
                          ") died (" + reason + ")";
    for (auto it = names_.begin(); it != names_.end();) {
      it = it->second.actor == id ? names_.erase(it) : std::next(it);
    }
    for (uint32_t s : e.subscribers) out.emplace_back(s, e.info);
  }
  return out;
}

bool ActorDirectory::IsLive(const ObjectID& actor) const {
  auto it = actors_.find(actor);
  return it == actors_.end() || it->second.info.state != State::kDead;  // unknown yet: being created
}

Status ActorDirectory::RegisterName(const std::string& ns, const std::string& name, const ObjectID& actor,
                                    std::string handle) {
  auto key = std::make_pair(ns, name);
  auto it = names_.find(key);
  if (it != names_.end() && it->second.actor != actor && IsLive(it->second.actor)) {
    return Status::InvalidArgument("an actor named '" + name + "' already exists in namespace '" + ns + "'");
  }
  names_[key] = Name{actor, std::move(handle)};
  Entry& e = actors_[actor];
  e.info.actor_id = actor;
  e.info.name = name;
  e.info.name_space = ns;
  return Status::Ok();
}

const std::string* ActorDirectory::LookupName(const std::string& ns, const std::string& name) const {
  auto it = names_.find({ns, name});
  if (it == names_.end() || !IsLive(it->second.actor)) return nullptr;
  return &it->second.handle;
}

void ActorDirectory::DropName(const std::string& ns, const std::string& name) { names_.erase({ns, name}); }

std::vector<std::string> ActorDirectory::ListNames(const std::string& ns, bool all) const {
  std::vector<std::string> out;
  for (const auto& [key, n] : names_) {
    if (!IsLive(n.actor) || (!all && key.first != ns)) continue;
    out.push_back(key.first + std::string(1, '\0') + key.second);
  }
  return out;
}

const protocol::ActorInfo* ActorDirectory::Find(const ObjectID& actor) const {
  auto it = actors_.find(actor);
  return it == actors_.end() ? nullptr : &it->second.info;
}

std::vector<protocol::ActorInfo> ActorDirectory::All() const {
  std::vector<protocol::ActorInfo> out;
  for (const auto& [id, e] : actors_) {
    if (e.info.state != State::kUnknown) out.push_back(e.info);
  }
  return out;
}

}  // namespace quanta
