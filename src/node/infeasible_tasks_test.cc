#include "node/infeasible_tasks.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

using namespace std::chrono_literals;

protocol::TaskSpec Spec(uint32_t seq, const std::string& name, protocol::ResourceMap resources = {}) {
  protocol::TaskSpec s;
  s.task_id = ObjectID::Make(1, seq, 0);
  s.name = name;
  s.resources = std::move(resources);
  return s;
}

TEST(InfeasibleTasksTest, WarnsOncePerDemandAndNotForPlacementGroups) {
  InfeasibleTasks parked(300s);
  std::string first = parked.Park(Spec(1, "big"), "no node has {GPU: 8}", "node 1 with {CPU: 2}");
  EXPECT_NE(first.find("task big cannot run yet: no node has {GPU: 8} (node 1 with {CPU: 2})"), std::string::npos)
      << first;
  EXPECT_NE(first.find("TaskUnschedulableError after 300 s"), std::string::npos) << first;
  EXPECT_EQ(parked.Park(Spec(2, "big"), "no node has {GPU: 8}", "node 1"), "");  // warned already
  EXPECT_EQ(parked.Park(Spec(3, "member", {{"CPU_group_abc", 1}}), "bundle not reserved", "node 1"), "");
  auto actor = Spec(4, "A");
  actor.kind = protocol::TaskKind::kActorCreation;
  EXPECT_NE(parked.Park(actor, "no node has {TPU: 1}", "node 1").find("actor A cannot run yet"), std::string::npos);
  EXPECT_TRUE(parked.contains(Spec(3, "member").task_id));
}

TEST(InfeasibleTasksTest, ExpireAfterTheTimeoutKeepingTheFirstParkTime) {
  InfeasibleTasks parked(10s);
  auto t0 = InfeasibleTasks::Clock::now();
  parked.Park(Spec(1, "a"), "why", "largest", t0);
  parked.Park(Spec(2, "b"), "why", "largest", t0 + 5s);
  EXPECT_TRUE(parked.TakeExpired(t0 + 9s).empty());
  // Placed again and parked again: the clock keeps running from the first park.
  auto all = parked.TakeAll();
  EXPECT_TRUE(parked.empty());
  for (const auto& [id, since] : all) {
    parked.Park(Spec(id == Spec(1, "").task_id ? 1 : 2, "x"), "why", "largest", t0 + 9s);
    parked.Restore(id, since);
  }
  auto expired = parked.TakeExpired(t0 + 11s);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], Spec(1, "").task_id);
  EXPECT_FALSE(parked.contains(expired[0]));
  parked.Forget(Spec(2, "").task_id);
  EXPECT_TRUE(parked.empty());
}

TEST(InfeasibleTasksTest, ZeroTimeoutWaitsForeverAndRestoreDoesNotPark) {
  InfeasibleTasks parked(0s);
  auto t0 = InfeasibleTasks::Clock::now();
  EXPECT_NE(parked.Park(Spec(1, "a"), "why", "l", t0).find("it waits until a node that can run it joins."),
            std::string::npos);
  EXPECT_TRUE(parked.TakeExpired(t0 + 1000h).empty());
  parked.Restore(Spec(9, "").task_id, t0);  // placed elsewhere meanwhile: not parked again
  EXPECT_FALSE(parked.contains(Spec(9, "").task_id));
  EXPECT_NE(InfeasibleTasks(5s).ExpiryText(Spec(1, "f"), "no node has {X: 1}", "node 1").find(
                "task f could not be scheduled: no node has {X: 1}, and no such node joined within 5 s (node 1)"),
            std::string::npos);
}

}  // namespace
}  // namespace quanta
