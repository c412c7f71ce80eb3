#include "control/actor_directory.h"

#include "protocol/wire.h"

namespace quanta {

using State = protocol::ActorInfo::State;

namespace {
constexpr const char* kActors = "actors";
constexpr const char* kNames = "names";

std::string NameKey(const std::string& ns, const std::string& name) {
  return U32Key(static_cast<uint32_t>(ns.size())) + ns + name;
}
}  // namespace

Result<size_t> ActorDirectory::Restore() {
  if (store_ == nullptr) return size_t{0};
  auto actors = store_->Load(kActors);
  if (!actors.ok()) return actors.status();
  auto corrupt = [this](const char* table) {
    return Status::InvalidArgument(std::string("a corrupt row in table ") + table + " of " + store_->Describe());
  };
  for (const auto& [key, value] : actors.value()) {
    Entry e;
    protocol::Reader r(value);
    uint32_t n = 0;
    if (!e.info.Decode(r).ok() || !r.Count(&n, 4).ok()) return corrupt(kActors);
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t node = 0;
      if (!r.U32(&node).ok()) return corrupt(kActors);
      e.subscribers.insert(node);
    }
    if (!r.ExpectEnd().ok()) return corrupt(kActors);
    actors_[e.info.actor_id] = std::move(e);
  }
  auto names = store_->Load(kNames);
  if (!names.ok()) return names.status();
  for (const auto& [key, value] : names.value()) {
    uint64_t ns_len = key.size() >= 4 ? KeyU64(std::string_view(key).substr(0, 4)) : ~uint64_t{0};
    if (ns_len > key.size() - 4 || value.size() < ObjectID::kSize) return corrupt(kNames);
    names_[{key.substr(4, ns_len), key.substr(4 + ns_len)}] =
        Name{ObjectID::FromBinary(value.substr(0, ObjectID::kSize)), value.substr(ObjectID::kSize)};
  }
  return actors_.size();
}

void ActorDirectory::Persist(const ObjectID& id, const Entry& e) {
  if (store_ == nullptr) return;
  std::string row;
  protocol::Writer w(&row);
  e.info.Encode(w);
  w.U32(static_cast<uint32_t>(e.subscribers.size()));
  for (uint32_t s : e.subscribers) w.U32(s);
  store_->Write(kActors, id.Binary(), row);
}

void ActorDirectory::DropNamesOf(const ObjectID& actor) {
  for (auto it = names_.begin(); it != names_.end();) {
    if (it->second.actor != actor) {
      ++it;
      continue;
    }
    if (store_ != nullptr) store_->Erase(kNames, NameKey(it->first.first, it->first.second));
    it = names_.erase(it);
  }
}

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
  if (info.state == State::kDead) DropNamesOf(info.actor_id);
  Persist(info.actor_id, e);
  return {e.subscribers.begin(), e.subscribers.end()};
}

protocol::ActorInfo ActorDirectory::Subscribe(uint32_t node, const ObjectID& actor) {
  auto it = actors_.find(actor);
  if (it == actors_.end()) {
    Entry& e = actors_[actor];
    e.info.actor_id = actor;
    e.subscribers.insert(node);
    Persist(actor, e);
    return e.info;
  }
  if (it->second.subscribers.insert(node).second) Persist(actor, it->second);
  return it->second.info;
}

std::vector<std::pair<uint32_t, protocol::ActorInfo>> ActorDirectory::OnNodeDead(
    uint32_t node, const std::string& reason, const std::function<bool(uint32_t)>& owner_alive) {
  std::vector<std::pair<uint32_t, protocol::ActorInfo>> out;
  for (auto& [id, e] : actors_) {
    bool unsubscribed = e.subscribers.erase(node) > 0;
    bool changed = OnNodeDeadOne(id, e, node, reason, owner_alive);
    if (changed) {
      for (uint32_t s : e.subscribers) out.emplace_back(s, e.info);
    }
    if (unsubscribed || changed) Persist(id, e);
  }
  return out;
}

bool ActorDirectory::OnNodeDeadOne(const ObjectID& id, Entry& e, uint32_t node, const std::string& reason,
                                   const std::function<bool(uint32_t)>& owner_alive) {
  if (e.info.state == State::kDead) return false;
  if (e.info.node_index == 0 && static_cast<uint32_t>(id.Creator() >> 32) == node) {
    // Not placed anywhere (not reported yet, submitted and unplaced, or restarting): only its
    // owner's node could place it, so nobody else will ever report it.
    e.info.state = State::kDead;
    std::string what = e.info.class_name.empty() ? id.Hex() : e.info.class_name;
    e.info.death_reason = "the actor " + what + " died: its owner's node (index " + std::to_string(node) +
                          ") died (" + reason + ") before it was placed";
    DropNamesOf(id);
    return true;
  }
  if (e.info.node_index != node || e.info.state == State::kUnknown) return false;
  if (e.info.restartable && e.info.owner_node != node && owner_alive(e.info.owner_node)) {
    e.info.state = State::kRestarting;
    e.info.node_index = 0;  // the owner places it again
    e.info.death_reason = "its node (index " + std::to_string(node) + ") died (" + reason + ")";
    return true;
  }
  e.info.state = State::kDead;
  e.info.death_reason = "the actor " + e.info.class_name + " died: its node (index " + std::to_string(node) +
                        ") died (" + reason + ")";
  DropNamesOf(id);
  return true;
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
  if (store_ != nullptr) store_->Write(kNames, NameKey(ns, name), actor.Binary() + handle);
  names_[key] = Name{actor, std::move(handle)};
  Entry& e = actors_[actor];
  e.info.actor_id = actor;
  e.info.name = name;
  e.info.name_space = ns;
  Persist(actor, e);
  return Status::Ok();
}

const std::string* ActorDirectory::LookupName(const std::string& ns, const std::string& name) const {
  auto it = names_.find({ns, name});
  if (it == names_.end() || !IsLive(it->second.actor)) return nullptr;
  return &it->second.handle;
}

void ActorDirectory::DropName(const std::string& ns, const std::string& name) {
  if (names_.erase({ns, name}) > 0 && store_ != nullptr) store_->Erase(kNames, NameKey(ns, name));
}

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
