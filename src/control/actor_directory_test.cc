// Unit tests for control/actor_directory.h: state reports and who hears of them, dead being
// final, unlocated (owner's) reports never overriding a host's, the name registry (unique per
// namespace, freed on death), and what a node's death does to the actors it hosted or owned.
#include "control/actor_directory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace quanta {
namespace {

using protocol::ActorInfo;
using State = ActorInfo::State;

// An actor whose creation was submitted on node `owner`.
ObjectID Actor(uint32_t owner, uint32_t seq) {
  return ObjectID::Make((static_cast<uint64_t>(owner) << 32) | 1, seq, 0);
}

ActorInfo Report(const ObjectID& id, State s, uint32_t node, uint32_t owner = 1) {
  ActorInfo info;
  info.actor_id = id;
  info.state = s;
  info.node_index = node;
  info.owner_node = owner;
  info.class_name = "Counter";
  return info;
}

bool NoOwnerAlive(uint32_t) { return false; }

TEST(ActorDirectory, ReportsGoToSubscribers) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  EXPECT_TRUE(d.Update(Report(a, State::kPending, 2)).empty()) << "nobody subscribed yet";
  ActorInfo now = d.Subscribe(3, a);
  EXPECT_EQ(now.state, State::kPending);
  EXPECT_EQ(now.node_index, 2u);
  d.Subscribe(4, a);
  d.Subscribe(4, a);  // twice: still one subscriber
  auto to = d.Update(Report(a, State::kAlive, 2));
  std::sort(to.begin(), to.end());
  EXPECT_EQ(to, (std::vector<uint32_t>{3, 4}));
  ASSERT_NE(d.Find(a), nullptr);
  EXPECT_EQ(d.Find(a)->state, State::kAlive);
}

TEST(ActorDirectory, SubscribingToAnUnknownActorAnswersUnknownAndHearsItsFirstReport) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  ActorInfo info = d.Subscribe(5, a);
  EXPECT_EQ(info.state, State::kUnknown);
  EXPECT_EQ(info.actor_id, a);
  EXPECT_TRUE(d.All().empty()) << "an actor nobody reported is not listed";
  EXPECT_EQ(d.Update(Report(a, State::kAlive, 2)), (std::vector<uint32_t>{5}));
  EXPECT_EQ(d.All().size(), 1u);
}

TEST(ActorDirectory, DeadIsFinal) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  d.Subscribe(3, a);
  ActorInfo dead = Report(a, State::kDead, 2);
  dead.death_reason = "killed";
  EXPECT_EQ(d.Update(dead).size(), 1u);
  // A late report from an old host must not revive it, nor be forwarded.
  EXPECT_TRUE(d.Update(Report(a, State::kAlive, 2)).empty());
  EXPECT_TRUE(d.Update(Report(a, State::kRestarting, 4)).empty());
  EXPECT_EQ(d.Find(a)->state, State::kDead);
  EXPECT_EQ(d.Find(a)->death_reason, "killed");
}

TEST(ActorDirectory, UnlocatedPendingNeverOverridesAHostReport) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  // The owner's "submitted, not placed" is kept while nothing else is known...
  d.Update(Report(a, State::kPending, 0));
  EXPECT_EQ(d.Find(a)->state, State::kPending);
  EXPECT_EQ(d.Find(a)->node_index, 0u);
  // ...a host's report replaces it...
  d.Update(Report(a, State::kAlive, 3));
  // ...and an unlocated report arriving late changes nothing.
  EXPECT_TRUE(d.Update(Report(a, State::kPending, 0)).empty());
  EXPECT_EQ(d.Find(a)->state, State::kAlive);
  EXPECT_EQ(d.Find(a)->node_index, 3u);
  // A located pending report (a restart elsewhere) is taken.
  d.Update(Report(a, State::kPending, 4));
  EXPECT_EQ(d.Find(a)->node_index, 4u);
}

TEST(ActorDirectory, NamesAreUniquePerNamespace) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1), b = Actor(1, 2);
  ASSERT_TRUE(d.RegisterName("ns", "counter", a, "handle-a").ok());
  Status st = d.RegisterName("ns", "counter", b, "handle-b");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'counter'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'ns'"), std::string::npos) << st.message();
  ASSERT_NE(d.LookupName("ns", "counter"), nullptr);
  EXPECT_EQ(*d.LookupName("ns", "counter"), "handle-a") << "the first registration wins";
  // Registering again for the same actor is idempotent.
  EXPECT_TRUE(d.RegisterName("ns", "counter", a, "handle-a2").ok());
  // Another namespace is another name.
  ASSERT_TRUE(d.RegisterName("other", "counter", b, "handle-b").ok());
  EXPECT_EQ(*d.LookupName("other", "counter"), "handle-b");
  EXPECT_EQ(d.LookupName("ns", "missing"), nullptr);
  EXPECT_EQ(d.LookupName("", "counter"), nullptr);
}

TEST(ActorDirectory, ANameIsFreedWhenItsActorDies) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1), b = Actor(1, 2);
  ASSERT_TRUE(d.RegisterName("ns", "svc", a, "h-a").ok());
  d.Update(Report(a, State::kAlive, 2));
  EXPECT_EQ(d.Find(a)->name, "svc") << "a report without a name keeps the registered one";
  EXPECT_EQ(d.Find(a)->name_space, "ns");
  d.Update(Report(a, State::kDead, 2));
  EXPECT_EQ(d.LookupName("ns", "svc"), nullptr);
  EXPECT_TRUE(d.ListNames("ns", false).empty());
  ASSERT_TRUE(d.RegisterName("ns", "svc", b, "h-b").ok()) << "the name is free again";
  EXPECT_EQ(*d.LookupName("ns", "svc"), "h-b");
}

TEST(ActorDirectory, DropAndListNames) {
  ActorDirectory d;
  ASSERT_TRUE(d.RegisterName("ns1", "x", Actor(1, 1), "hx").ok());
  ASSERT_TRUE(d.RegisterName("ns1", "y", Actor(1, 2), "hy").ok());
  ASSERT_TRUE(d.RegisterName("ns2", "z", Actor(1, 3), "hz").ok());
  auto ns1 = d.ListNames("ns1", false);
  EXPECT_EQ(ns1, (std::vector<std::string>{std::string("ns1\0x", 5), std::string("ns1\0y", 5)}));
  EXPECT_EQ(d.ListNames("", true).size(), 3u);
  EXPECT_TRUE(d.ListNames("nobody", false).empty());
  d.DropName("ns1", "x");
  d.DropName("ns1", "never-registered");
  EXPECT_EQ(d.LookupName("ns1", "x"), nullptr);
  EXPECT_EQ(d.ListNames("ns1", false).size(), 1u);
}

TEST(ActorDirectory, NodeDeathKillsTheActorsItHosted) {
  ActorDirectory d;
  ObjectID on2 = Actor(1, 1), on3 = Actor(1, 2);
  ASSERT_TRUE(d.RegisterName("ns", "on2", on2, "h").ok());
  d.Update(Report(on2, State::kAlive, 2));
  d.Update(Report(on3, State::kAlive, 3));
  d.Subscribe(1, on2);
  d.Subscribe(2, on3);  // the dying node's own subscription goes with it
  auto out = d.OnNodeDead(2, "heartbeat timeout", NoOwnerAlive);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, 1u);
  EXPECT_EQ(out[0].second.actor_id, on2);
  EXPECT_EQ(out[0].second.state, State::kDead);
  EXPECT_NE(out[0].second.death_reason.find("heartbeat timeout"), std::string::npos) << out[0].second.death_reason;
  EXPECT_NE(out[0].second.death_reason.find("Counter"), std::string::npos);
  EXPECT_EQ(d.LookupName("ns", "on2"), nullptr);
  EXPECT_EQ(d.Find(on3)->state, State::kAlive);
  EXPECT_TRUE(d.Update(Report(on3, State::kAlive, 3)).empty()) << "node 2 no longer subscribed";
}

TEST(ActorDirectory, RestartableActorRestartsWhenItsOwnerLives) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  ActorInfo alive = Report(a, State::kAlive, 2, /*owner=*/1);
  alive.restartable = true;
  d.Update(alive);
  d.Subscribe(4, a);
  auto out = d.OnNodeDead(2, "killed", [](uint32_t n) { return n == 1; });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].second.state, State::kRestarting);
  EXPECT_EQ(out[0].second.node_index, 0u) << "unplaced: its owner re-creates it";
  // The new host's report revives the entry.
  d.Update(Report(a, State::kAlive, 3));
  EXPECT_EQ(d.Find(a)->state, State::kAlive);
  EXPECT_EQ(d.Find(a)->node_index, 3u);
}

TEST(ActorDirectory, RestartableActorDiesWithItsOwnerOrOnItsOwnersNode) {
  ActorDirectory d;
  ObjectID owner_dead = Actor(1, 1), same_node = Actor(2, 2);
  ActorInfo x = Report(owner_dead, State::kAlive, 2, /*owner=*/1);
  x.restartable = true;
  ActorInfo y = Report(same_node, State::kAlive, 2, /*owner=*/2);
  y.restartable = true;
  d.Update(x);
  d.Update(y);
  d.OnNodeDead(2, "killed", [](uint32_t n) { return n == 2; });  // node 1 not alive
  EXPECT_EQ(d.Find(owner_dead)->state, State::kDead) << "nobody is left to re-create it";
  EXPECT_EQ(d.Find(same_node)->state, State::kDead) << "its owner died with it";
}

TEST(ActorDirectory, UnplacedActorsDieWithTheirOwnersNode) {
  // The owner's node is the only one that can place a creation it has not placed yet (or
  // re-create a restarting one): when it dies, nobody else ever reports those actors.
  ActorDirectory d;
  ObjectID pending = Actor(1, 1), restarting = Actor(1, 2), elsewhere = Actor(3, 3);
  d.Update(Report(pending, State::kPending, 0, /*owner=*/1));
  ActorInfo r = Report(restarting, State::kRestarting, 0, /*owner=*/1);
  r.restartable = true;
  d.Update(r);
  d.Update(Report(elsewhere, State::kPending, 0, /*owner=*/3));
  d.Subscribe(2, pending);
  d.Subscribe(2, restarting);
  // Subscribed before its owner's first report, which now never comes; its name goes too.
  ObjectID unreported = Actor(1, 4);
  d.Subscribe(2, unreported);
  ASSERT_TRUE(d.RegisterName("ns", "late", unreported, "h").ok());
  auto out = d.OnNodeDead(1, "killed", [](uint32_t n) { return n != 1; });
  EXPECT_EQ(out.size(), 3u);
  for (const auto& [node, info] : out) {
    EXPECT_EQ(node, 2u);
    EXPECT_EQ(info.state, State::kDead);
    EXPECT_FALSE(info.death_reason.empty());
  }
  EXPECT_EQ(d.Find(pending)->state, State::kDead);
  EXPECT_EQ(d.Find(restarting)->state, State::kDead);
  EXPECT_EQ(d.Find(unreported)->state, State::kDead);
  EXPECT_EQ(d.LookupName("ns", "late"), nullptr);
  EXPECT_EQ(d.Find(elsewhere)->state, State::kPending) << "owned by a live node: untouched";
}

TEST(ActorDirectory, DeathOfANodeWithNothingOnItChangesNothing) {
  ActorDirectory d;
  ObjectID a = Actor(1, 1);
  d.Update(Report(a, State::kAlive, 2));
  d.Subscribe(5, Actor(9, 9));  // unknown actor: stays unknown
  EXPECT_TRUE(d.OnNodeDead(7, "x", NoOwnerAlive).empty());
  EXPECT_EQ(d.Find(a)->state, State::kAlive);
  EXPECT_EQ(d.Find(Actor(9, 9))->state, State::kUnknown);
}

}  // namespace
}  // namespace quanta
