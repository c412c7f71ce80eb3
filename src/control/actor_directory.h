// The cluster's actors: where each lives and in which state, the named-actor registry, and who
// wants to hear about changes (docs/cluster-design.md §8-9). The one place these tables change.
//
// The node hosting an actor reports its state (pending, alive, restarting, dead); nodes that
// call an actor subscribe to it and are told of every change. A name belongs to one live actor
// per namespace: the first registration wins, later ones are refused (the caller then looks the
// winner up when it asked get_if_exists), and the name is freed when its actor dies.
//
// With a TableStore, every change is written through — entries with their subscribers ("actors",
// by id) and names ("names") — and Restore reloads them after a head restart.
//
// Ownership: owned by the ControlServer. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "control/table_store.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class ActorDirectory {
 public:
  explicit ActorDirectory(TableStore* store = nullptr) : store_(store) {}
  // Reloads the directory from the store; returns how many actors.
  Result<size_t> Restore();
  // Records a report; returns the nodes to forward it to (its subscribers).
  std::vector<uint32_t> Update(const protocol::ActorInfo& info);
  // Subscribes `node`; returns what is known now (state kUnknown if nothing).
  protocol::ActorInfo Subscribe(uint32_t node, const ObjectID& actor);
  // Actors hosted on a dead node are dead — unless they may restart and their owner's node is
  // alive (`owner_alive`): then they are restarting, unplaced, and the owner re-creates them
  // elsewhere (a report from the new host revives the entry). Actors the dead node owns and
  // that are placed nowhere (unreported, unplaced, restarting) are dead too: only it could
  // place them. Returns the updates to send, per subscriber.
  std::vector<std::pair<uint32_t, protocol::ActorInfo>> OnNodeDead(uint32_t node, const std::string& reason,
                                                                    const std::function<bool(uint32_t)>& owner_alive);

  Status RegisterName(const std::string& ns, const std::string& name, const ObjectID& actor, std::string handle);
  const std::string* LookupName(const std::string& ns, const std::string& name) const;
  void DropName(const std::string& ns, const std::string& name);
  // "namespace\0name" of every live named actor (in `ns`, or all when `all`).
  std::vector<std::string> ListNames(const std::string& ns, bool all) const;

  const protocol::ActorInfo* Find(const ObjectID& actor) const;
  std::vector<protocol::ActorInfo> All() const;

 private:
  struct Entry {
    protocol::ActorInfo info;
    std::set<uint32_t> subscribers;
  };
  struct Name {
    ObjectID actor;
    std::string handle;
  };
  bool IsLive(const ObjectID& actor) const;
  void Persist(const ObjectID& id, const Entry& e);
  void DropNamesOf(const ObjectID& actor);
  // OnNodeDead for one entry; true if its state changed.
  bool OnNodeDeadOne(const ObjectID& id, Entry& e, uint32_t node, const std::string& reason,
                     const std::function<bool(uint32_t)>& owner_alive);

  TableStore* store_;
  std::unordered_map<ObjectID, Entry, ObjectIDHash> actors_;
  std::map<std::pair<std::string, std::string>, Name> names_;
};

}  // namespace quanta
