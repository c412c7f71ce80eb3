// Unit tests for node/actor_router.h (calls to actors on other nodes) and node/actor_table.h:
// calls wait until the actor is placed and leave in submission order, per-caller order of
// calls retried after their node died, restart by the owner, adoption when re-created here,
// death failing every waiting call, kill (before and after placement), cancellation, and
// the actor object's release.
#include "node/actor_router.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "node/actor_table.h"

namespace quanta {
namespace {

using protocol::ActorInfo;
using protocol::ObjectKind;
using State = ActorInfo::State;

constexpr uint64_t kCallerA = (1ull << 32) | 7;  // two clients of this node (node 1)
constexpr uint64_t kCallerB = (1ull << 32) | 8;

ObjectID ActorId(uint32_t seq) { return ObjectID::Make((1ull << 32) | 1, seq, 0); }

class ActorRouterTest : public ::testing::Test {
 protected:
  ActorRouterTest()
      : router_(&tasks_,
                ActorRouter::Callbacks{
                    [this](const ObjectID& a) { return a == hosted_here_; },
                    [this](const TaskID& id, const protocol::ObjectValue& e) {
                      failed_.push_back({id, e});
                      tasks_.erase(id);  // as the TaskManager's Fail does
                    },
                    [this](Task& t, uint32_t node) {
                      if (!forward_ok_) return false;
                      t.forwarded_to = node;
                      forwarded_.push_back({t.spec.task_id, node});
                      return true;
                    },
                    [this](const ObjectID& a) { subscribed_.push_back(a); },
                    [this](uint32_t node, const ObjectID& a, bool no_restart, const std::string& why) {
                      killed_.push_back({node, a, no_restart, why});
                    },
                    [this](uint32_t node, const protocol::CancelTask& m) { cancels_.push_back({node, m.object_id}); },
                    [this](const std::vector<ObjectID>& pins) { released_.insert(released_.end(), pins.begin(), pins.end()); },
                    [this](const protocol::TaskSpec& creation) { recreated_.push_back(creation); },
                    [this](const ObjectID& a, std::deque<TaskID> waiting) { adopted_.push_back({a, {waiting.begin(), waiting.end()}}); }}) {}

  // A call from `caller` (its seq-th submission) to `actor`; arguments ready unless told.
  TaskID Call(const ObjectID& actor, uint64_t caller, uint32_t seq, bool ready = true) {
    TaskID id = ObjectID::Make(caller, seq, 0);
    Task& t = tasks_[id];
    t.spec.task_id = id;
    t.spec.kind = protocol::TaskKind::kActorMethod;
    t.spec.actor_id = actor;
    t.spec.name = "Counter.inc";
    t.deps_ready = ready;
    return id;
  }
  protocol::TaskSpec Creation(const ObjectID& actor, int32_t max_restarts, bool detached = false) {
    protocol::TaskSpec s;
    s.task_id = actor;
    s.actor_id = actor;
    s.kind = protocol::TaskKind::kActorCreation;
    s.actor.max_restarts = max_restarts;
    s.actor.detached = detached;
    s.actor.class_name = "Counter";
    s.nested_refs = {ObjectID::Make(9, 9, 9)};
    return s;
  }
  ActorInfo Update(const ObjectID& actor, State s, uint32_t node, std::string reason = "") {
    ActorInfo info;
    info.actor_id = actor;
    info.state = s;
    info.node_index = node;
    info.class_name = "Counter";
    info.death_reason = std::move(reason);
    return info;
  }
  std::vector<TaskID> ForwardedIds() const {
    std::vector<TaskID> out;
    for (const auto& [id, node] : forwarded_) out.push_back(id);
    return out;
  }

  struct Kill {
    uint32_t node;
    ObjectID actor;
    bool no_restart;
    std::string why;
  };
  TaskTable tasks_;
  ActorRouter router_;
  ObjectID hosted_here_;
  bool forward_ok_ = true;
  std::vector<std::pair<TaskID, protocol::ObjectValue>> failed_;
  std::vector<std::pair<TaskID, uint32_t>> forwarded_;
  std::vector<ObjectID> subscribed_, released_;
  std::vector<Kill> killed_;
  std::vector<std::pair<uint32_t, ObjectID>> cancels_;
  std::vector<protocol::TaskSpec> recreated_;
  std::vector<std::pair<ObjectID, std::vector<TaskID>>> adopted_;
};

TEST_F(ActorRouterTest, CallsWaitUntilPlacedThenLeaveInOrder) {
  ObjectID a = ActorId(1);
  TaskID c1 = Call(a, kCallerA, 1), c2 = Call(a, kCallerA, 2), c3 = Call(a, kCallerA, 3);
  router_.OnCall(c2);
  router_.OnCall(c3);
  router_.Pump(a);
  EXPECT_TRUE(forwarded_.empty()) << "its node is not known yet";
  EXPECT_TRUE(router_.Routes(a));
  EXPECT_EQ(subscribed_, (std::vector<ObjectID>{a})) << "subscribed once to the directory";
  // The creation goes to node 4 with c1, which was submitted before the router knew the actor.
  router_.OnCreationPlaced(a, 4, {c1}, {}, Creation(a, 0));
  EXPECT_EQ(ForwardedIds(), (std::vector<TaskID>{c1, c2, c3}));
  for (const auto& [id, node] : forwarded_) EXPECT_EQ(node, 4u);
  EXPECT_EQ(subscribed_.size(), 1u);
}

TEST_F(ActorRouterTest, ACallWhoseArgumentsAreNotReadyHoldsBackLaterOnes) {
  ObjectID a = ActorId(1);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  router_.OnActorUpdate(Update(a, State::kAlive, 4));
  TaskID c1 = Call(a, kCallerA, 1, /*ready=*/false), c2 = Call(a, kCallerA, 2);
  router_.OnCall(c1);
  router_.OnCall(c2);
  router_.Pump(a);
  EXPECT_TRUE(forwarded_.empty()) << "c2 must not overtake c1";
  tasks_[c1].deps_ready = true;
  router_.Pump(a);
  EXPECT_EQ(ForwardedIds(), (std::vector<TaskID>{c1, c2}));
}

TEST_F(ActorRouterTest, CallsGoneFromTheTableAreSkipped) {
  ObjectID a = ActorId(1);
  TaskID c1 = Call(a, kCallerA, 1), c2 = Call(a, kCallerA, 2);
  router_.OnCall(c1);
  router_.OnCall(c2);
  tasks_.erase(c1);  // failed or cancelled elsewhere meanwhile
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  EXPECT_EQ(ForwardedIds(), (std::vector<TaskID>{c2}));
}

TEST_F(ActorRouterTest, ACallThatCannotBeSentFails) {
  ObjectID a = ActorId(1);
  TaskID c1 = Call(a, kCallerA, 1);
  router_.OnCall(c1);
  forward_ok_ = false;
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].first, c1);
  EXPECT_EQ(failed_[0].second.kind, ObjectKind::kActorDied);
  EXPECT_NE(failed_[0].second.data.find("node 4"), std::string::npos) << failed_[0].second.data;
}

TEST_F(ActorRouterTest, ActorOwnedElsewhereIsFoundThroughTheDirectory) {
  ObjectID a = ObjectID::Make((5ull << 32) | 1, 1, 0);  // created on node 5
  TaskID c1 = Call(a, kCallerA, 1);
  router_.OnCall(c1);
  router_.OnActorUpdate(Update(a, State::kUnknown, 0));
  router_.OnActorUpdate(Update(a, State::kPending, 0));  // unlocated: still nowhere to send
  router_.Pump(a);
  EXPECT_TRUE(forwarded_.empty());
  router_.OnActorUpdate(Update(a, State::kPending, 6));
  EXPECT_EQ(forwarded_, (std::vector<std::pair<TaskID, uint32_t>>{{c1, 6}}));
}

TEST_F(ActorRouterTest, UpdatesForActorsNotRoutedHereAreIgnored) {
  router_.OnActorUpdate(Update(ActorId(3), State::kAlive, 4));
  EXPECT_FALSE(router_.Routes(ActorId(3)));
  EXPECT_TRUE(subscribed_.empty());
}

TEST_F(ActorRouterTest, DeathFailsWaitingAndLaterCallsAndReleasesPins) {
  ObjectID a = ActorId(1);
  ObjectID pin = ObjectID::Make(1, 50, 1);
  router_.OnCreationPlaced(a, 4, {}, {pin}, Creation(a, 0));
  TaskID c1 = Call(a, kCallerA, 1, /*ready=*/false);
  router_.OnCall(c1);
  router_.OnActorUpdate(Update(a, State::kDead, 4, "the actor was killed"));
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].first, c1);
  EXPECT_EQ(failed_[0].second.kind, ObjectKind::kActorDied);
  EXPECT_EQ(failed_[0].second.data, "the actor was killed");
  EXPECT_EQ(released_, (std::vector<ObjectID>{pin}));
  TaskID c2 = Call(a, kCallerA, 2);
  router_.OnCall(c2);
  ASSERT_EQ(failed_.size(), 2u) << "a call to a dead actor fails at once";
  EXPECT_EQ(failed_[1].first, c2);
  EXPECT_EQ(router_.DeathReason(a), "the actor was killed");
  // Dead is final: a late alive report changes nothing, pins are not released twice.
  router_.OnActorUpdate(Update(a, State::kAlive, 4));
  router_.OnActorUpdate(Update(a, State::kDead, 4, "again"));
  EXPECT_EQ(released_.size(), 1u);
  EXPECT_EQ(router_.DeathReason(a), "the actor was killed");
  EXPECT_TRUE(forwarded_.empty());
}

TEST_F(ActorRouterTest, DeathWithoutReasonNamesTheClass) {
  ObjectID a = ActorId(1);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  router_.OnActorUpdate(Update(a, State::kDead, 4));
  EXPECT_NE(router_.DeathReason(a).find("Counter"), std::string::npos) << router_.DeathReason(a);
  EXPECT_EQ(router_.DeathReason(ActorId(99)), "");
}

TEST_F(ActorRouterTest, RetriedCallsKeepEachCallersOrder) {
  ObjectID a = ActorId(1);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  router_.OnActorUpdate(Update(a, State::kAlive, 4));
  std::vector<TaskID> a_calls, b_calls;
  for (uint32_t i = 1; i <= 3; ++i) {
    a_calls.push_back(Call(a, kCallerA, i));
    b_calls.push_back(Call(a, kCallerB, i));
    router_.OnCall(a_calls.back());
    router_.OnCall(b_calls.back());
  }
  router_.Pump(a);
  ASSERT_EQ(forwarded_.size(), 6u);
  forwarded_.clear();
  // Node 4 dies with A2, A3, B2 in flight; A4 and B4 were submitted meanwhile.
  TaskID a4 = Call(a, kCallerA, 4, false), b4 = Call(a, kCallerB, 4, false);
  router_.OnCall(a4);
  router_.OnCall(b4);
  for (const TaskID& id : {a_calls[2], b_calls[1], a_calls[1]}) {  // in no particular order
    tasks_[id].forwarded_to = 0;
    router_.Retry(id);
  }
  router_.Pump(a);
  EXPECT_TRUE(forwarded_.empty()) << "they wait for the actor's next location";
  tasks_[a4].deps_ready = tasks_[b4].deps_ready = true;
  router_.OnActorUpdate(Update(a, State::kAlive, 6));
  std::vector<TaskID> got = ForwardedIds();
  ASSERT_EQ(got.size(), 5u);
  auto pos = [&](const TaskID& id) { return std::find(got.begin(), got.end(), id) - got.begin(); };
  EXPECT_LT(pos(a_calls[1]), pos(a_calls[2]));
  EXPECT_LT(pos(a_calls[2]), pos(a4));
  EXPECT_LT(pos(b_calls[1]), pos(b4));
  for (const auto& [id, node] : forwarded_) EXPECT_EQ(node, 6u);
}

TEST_F(ActorRouterTest, RetryOfACallToADeadActorFails) {
  ObjectID a = ActorId(1);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  TaskID c1 = Call(a, kCallerA, 1);
  router_.OnCall(c1);
  router_.Pump(a);
  router_.OnActorUpdate(Update(a, State::kDead, 4, "its node died"));
  router_.Retry(c1);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].second.data, "its node died");
}

TEST_F(ActorRouterTest, OwnerRecreatesARestartableActorOnceWithFewerRestarts) {
  ObjectID a = ActorId(1);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 3));
  router_.OnActorUpdate(Update(a, State::kAlive, 4));
  TaskID c1 = Call(a, kCallerA, 1);
  ActorInfo restarting = Update(a, State::kRestarting, 0, "its node died");
  restarting.restarts = 1;  // its host had restarted it once already
  router_.OnActorUpdate(restarting);
  router_.OnCall(c1);
  router_.Pump(a);
  EXPECT_TRUE(forwarded_.empty()) << "calls wait while it restarts";
  ASSERT_EQ(recreated_.size(), 1u);
  EXPECT_EQ(recreated_[0].task_id, a);
  EXPECT_EQ(recreated_[0].actor.max_restarts, 1) << "3 allowed, 1 used by its host, 1 by this re-creation";
  EXPECT_TRUE(recreated_[0].nested_refs.empty()) << "held through the pins, not the spec";
  router_.OnActorUpdate(restarting);
  EXPECT_EQ(recreated_.size(), 1u) << "a repeated report does not create it twice";
  // Placed again on node 7: the waiting call follows.
  router_.OnCreationPlaced(a, 7, {}, {}, recreated_[0]);
  EXPECT_EQ(forwarded_, (std::vector<std::pair<TaskID, uint32_t>>{{c1, 7}}));
}

TEST_F(ActorRouterTest, UnlimitedRestartsStayUnlimitedAndNonRestartableIsNotRecreated) {
  ObjectID forever = ActorId(1), once = ActorId(2);
  router_.OnCreationPlaced(forever, 4, {}, {}, Creation(forever, -1));
  router_.OnCreationPlaced(once, 4, {}, {}, Creation(once, 0));
  router_.OnActorUpdate(Update(forever, State::kRestarting, 0));
  router_.OnActorUpdate(Update(once, State::kRestarting, 0));
  ASSERT_EQ(recreated_.size(), 1u);
  EXPECT_EQ(recreated_[0].actor.max_restarts, -1);
}

TEST_F(ActorRouterTest, RecreatedHereTheLocalActorAdoptsTheWaitingCalls) {
  ObjectID a = ActorId(1);
  ObjectID pin = ObjectID::Make(1, 50, 1);
  router_.OnCreationPlaced(a, 4, {}, {pin}, Creation(a, 2));
  router_.OnActorUpdate(Update(a, State::kRestarting, 0));
  TaskID c1 = Call(a, kCallerA, 1), c2 = Call(a, kCallerA, 2);
  router_.OnCall(c1);
  router_.OnCall(c2);
  hosted_here_ = a;
  router_.OnActorUpdate(Update(a, State::kPending, 1));
  ASSERT_EQ(adopted_.size(), 1u);
  EXPECT_EQ(adopted_[0].second, (std::vector<TaskID>{c1, c2}));
  EXPECT_EQ(released_, (std::vector<ObjectID>{pin})) << "the local creation pins its own arguments";
  EXPECT_FALSE(router_.Routes(a));
  EXPECT_TRUE(forwarded_.empty());
}

TEST_F(ActorRouterTest, KillBeforePlacementIsSentOncePlaced) {
  ObjectID a = ActorId(1);
  router_.Kill(a, true, "quanta.kill()");
  EXPECT_TRUE(killed_.empty());
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  ASSERT_EQ(killed_.size(), 1u);
  EXPECT_EQ(killed_[0].node, 4u);
  EXPECT_TRUE(killed_[0].no_restart);
  EXPECT_EQ(killed_[0].why, "quanta.kill()");
  router_.OnActorUpdate(Update(a, State::kAlive, 4));
  EXPECT_EQ(killed_.size(), 1u) << "sent once";
}

TEST_F(ActorRouterTest, KillOfAnActorKnownThroughTheDirectoryWaitsForItsLocation) {
  ObjectID a = ObjectID::Make((5ull << 32) | 1, 1, 0);
  router_.Kill(a, false, "restart it");
  router_.OnActorUpdate(Update(a, State::kAlive, 6));
  ASSERT_EQ(killed_.size(), 1u);
  EXPECT_EQ(killed_[0].node, 6u);
  EXPECT_FALSE(killed_[0].no_restart);
  router_.Kill(a, true, "now");
  EXPECT_EQ(killed_.size(), 2u) << "placed: sent at once";
  router_.OnActorUpdate(Update(a, State::kDead, 6));
  router_.Kill(a, true, "dead already");
  EXPECT_EQ(killed_.size(), 2u) << "nothing to kill";
}

TEST_F(ActorRouterTest, FreeingTheActorObjectKillsOwnedNonDetachedActors) {
  ObjectID owned = ActorId(1), detached = ActorId(2), foreign = ObjectID::Make((5ull << 32) | 1, 3, 0);
  router_.OnCreationPlaced(owned, 4, {}, {}, Creation(owned, 0));
  router_.OnCreationPlaced(detached, 4, {}, {}, Creation(detached, 0, /*detached=*/true));
  router_.OnActorUpdate(Update(foreign, State::kAlive, 4));  // not routed: ignored
  router_.OnCall(Call(foreign, kCallerA, 1));
  router_.OnActorUpdate(Update(foreign, State::kAlive, 4));
  router_.OnObjectsFreed({owned.ReturnId(0), detached.ReturnId(0), foreign.ReturnId(0),
                          owned.ReturnId(1) /* a method result, not the actor object */});
  ASSERT_EQ(killed_.size(), 1u);
  EXPECT_EQ(killed_[0].actor, owned);
  EXPECT_TRUE(killed_[0].no_restart);
  EXPECT_NE(killed_[0].why.find("out of scope"), std::string::npos) << killed_[0].why;
}

TEST_F(ActorRouterTest, CancelAWaitingOrAForwardedCall) {
  ObjectID a = ActorId(1);
  TaskID waiting = Call(a, kCallerA, 1, /*ready=*/false), sent = Call(a, kCallerB, 1);
  router_.OnCall(sent);
  router_.OnCall(waiting);
  router_.OnCreationPlaced(a, 4, {}, {}, Creation(a, 0));
  ASSERT_EQ(ForwardedIds(), (std::vector<TaskID>{sent}));
  protocol::CancelTask msg;
  msg.object_id = waiting.ReturnId(0);
  EXPECT_TRUE(router_.Cancel(tasks_.at(waiting), msg));
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].second.kind, ObjectKind::kCancelled);
  msg.object_id = sent.ReturnId(0);
  EXPECT_TRUE(router_.Cancel(tasks_.at(sent), msg));
  EXPECT_EQ(cancels_, (std::vector<std::pair<uint32_t, ObjectID>>{{4, sent.ReturnId(0)}}));
  // A call to an actor this router does not route is not ours.
  TaskID other = Call(ActorId(9), kCallerA, 5);
  EXPECT_FALSE(router_.Cancel(tasks_.at(other), msg));
}

TEST(ActorTable, CreateFindErase) {
  ActorTable t;
  protocol::TaskSpec creation;
  creation.task_id = ActorId(1);
  creation.actor.max_restarts = 4;
  Actor& a = t.Create(creation);
  EXPECT_EQ(a.id, creation.task_id);
  EXPECT_EQ(a.state, Actor::State::kPending);
  EXPECT_EQ(a.restarts_left, 4);
  EXPECT_EQ(t.Find(ActorId(1)), &a);
  EXPECT_EQ(t.Find(ActorId(2)), nullptr);
  protocol::TaskSpec other = creation;
  other.task_id = ActorId(2);
  other.actor.max_restarts = -1;
  EXPECT_EQ(t.Create(other).restarts_left, -1);
  EXPECT_EQ(t.Find(ActorId(1))->restarts_left, 4) << "another actor's creation leaves it alone";
  int n = 0;
  t.ForEach([&](Actor&) { ++n; });
  EXPECT_EQ(n, 2);
  t.Erase(ActorId(1));
  EXPECT_EQ(t.Find(ActorId(1)), nullptr);
  EXPECT_EQ(t.size(), 1u);
  t.Erase(ActorId(1));  // twice: harmless
}

}  // namespace
}  // namespace quanta
