// Unit tests for scheduler/resource_set.h and scheduler/task_queue.h.
#include "scheduler/task_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "scheduler/resource_set.h"

namespace quanta {
namespace {

constexpr int64_t kUnit = protocol::kResourceUnit;

ResourceSet Res(std::initializer_list<std::pair<const char*, double>> items) {
  ResourceSet r;
  for (const auto& [name, amount] : items) {
    r.Set(name, r.Get(name) + static_cast<int64_t>(amount * kUnit + (amount < 0 ? -0.5 : 0.5)));
  }
  return r;
}

TaskID T(uint32_t n) { return ObjectID::Make(0xABCD, n, 0); }

// ------------------------------------------------------------------------------- ResourceSet

TEST(ResourceSet, EmptyAndGet) {
  ResourceSet r;
  EXPECT_TRUE(r.IsEmpty());
  EXPECT_EQ(r.Get("CPU"), 0);
  r.Set("CPU", 2 * kUnit);
  EXPECT_FALSE(r.IsEmpty());
  EXPECT_EQ(r.Get("CPU"), 2 * kUnit);
  EXPECT_EQ(r.Get("GPU"), 0);
}

TEST(ResourceSet, ZeroEntriesAreErased) {
  ResourceSet r;
  r.Set("CPU", kUnit);
  r.Set("CPU", 0);
  EXPECT_TRUE(r.IsEmpty());
  EXPECT_TRUE(r.amounts().empty());
  // So a set with an explicit zero equals one without the name.
  ResourceSet a(protocol::ResourceMap{{"CPU", kUnit}, {"GPU", 0}});
  ResourceSet b(protocol::ResourceMap{{"CPU", kUnit}});
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a < b);
  EXPECT_FALSE(b < a);
}

TEST(ResourceSet, FromMapSumsDuplicateNames) {
  ResourceSet r(protocol::ResourceMap{{"CPU", kUnit}, {"GPU", 5000}, {"CPU", 2 * kUnit}});
  EXPECT_EQ(r.Get("CPU"), 3 * kUnit);
  EXPECT_EQ(r.Get("GPU"), 5000);
  EXPECT_EQ(r.amounts().size(), 2u);
}

TEST(ResourceSet, Contains) {
  ResourceSet node = Res({{"CPU", 4}, {"GPU", 1}});
  EXPECT_TRUE(node.Contains(ResourceSet()));
  EXPECT_TRUE(node.Contains(Res({{"CPU", 4}})));
  EXPECT_TRUE(node.Contains(Res({{"CPU", 0.5}, {"GPU", 1}})));
  EXPECT_FALSE(node.Contains(Res({{"CPU", 4.0001}})));
  EXPECT_FALSE(node.Contains(Res({{"TPU", 0.0001}})));  // missing names mean zero
  EXPECT_FALSE(ResourceSet().Contains(Res({{"CPU", 1}})));
  EXPECT_TRUE(ResourceSet().Contains(ResourceSet()));
}

TEST(ResourceSet, AddAndSubtractAreExactInFixedPoint) {
  ResourceSet r = Res({{"CPU", 1}});
  // Ten tenths of a CPU taken and given back leave exactly what was there: no float drift.
  for (int i = 0; i < 10; ++i) r.Subtract(Res({{"CPU", 0.1}}));
  EXPECT_TRUE(r.IsEmpty()) << r.ToString();
  for (int i = 0; i < 10; ++i) r.Add(Res({{"CPU", 0.1}}));
  EXPECT_EQ(r, Res({{"CPU", 1}}));

  r.Add(Res({{"GPU", 2}, {"CPU", 0.5}}));
  EXPECT_EQ(r.Get("CPU"), 15000);
  EXPECT_EQ(r.Get("GPU"), 2 * kUnit);
  r.Subtract(Res({{"GPU", 2}}));
  EXPECT_EQ(r.amounts().count("GPU"), 0u) << "a name subtracted to zero is erased";
}

TEST(ResourceSet, SubtractMayGoNegativeAndToMapClamps) {
  ResourceSet r = Res({{"CPU", 1}});
  r.Subtract(Res({{"CPU", 2}, {"GPU", 1}}));
  EXPECT_EQ(r.Get("CPU"), -kUnit);
  EXPECT_EQ(r.Get("GPU"), -kUnit);
  EXPECT_FALSE(r.Contains(Res({{"CPU", 0.0001}})));
  protocol::ResourceMap m = r.ToMap();
  ASSERT_EQ(m.size(), 2u);
  for (const auto& [name, amount] : m) EXPECT_EQ(amount, 0) << name;
  r.Add(Res({{"CPU", 3}}));
  EXPECT_EQ(r.Get("CPU"), 2 * kUnit);
}

TEST(ResourceSet, ToMapIsSortedByName) {
  ResourceSet r = Res({{"b", 1}, {"a", 2}, {"CPU", 0.5}});
  protocol::ResourceMap m = r.ToMap();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0], (std::pair<std::string, int64_t>{"CPU", 5000}));
  EXPECT_EQ(m[1], (std::pair<std::string, int64_t>{"a", 2 * kUnit}));
  EXPECT_EQ(m[2], (std::pair<std::string, int64_t>{"b", kUnit}));
}

TEST(FormatAmount, WholeUnits) {
  EXPECT_EQ(FormatAmount(0), "0");
  EXPECT_EQ(FormatAmount(kUnit), "1");
  EXPECT_EQ(FormatAmount(64 * kUnit), "64");
  EXPECT_EQ(FormatAmount(-3 * kUnit), "-3");
  EXPECT_EQ(FormatAmount(int64_t{1000000000000} * kUnit), "1000000000000");
}

TEST(FormatAmount, SmallFractions) {
  EXPECT_EQ(FormatAmount(5000), "0.5");
  EXPECT_EQ(FormatAmount(2500), "0.25");
  EXPECT_EQ(FormatAmount(1), "0.0001");
  EXPECT_EQ(FormatAmount(15000), "1.5");
  EXPECT_EQ(FormatAmount(10001), "1.0001");
  EXPECT_EQ(FormatAmount(-5000), "-0.5");
  EXPECT_EQ(FormatAmount(3333), "0.3333");
}

TEST(FormatAmount, LargeFractionsAreExact) {
  // A fixed-point amount has at most four decimals and formats exactly, whatever its
  // magnitude: no rounding to six significant digits, no scientific notation.
  EXPECT_EQ(FormatAmount(1000001), "100.0001");
  EXPECT_EQ(FormatAmount(123456789), "12345.6789");
  EXPECT_EQ(FormatAmount(12345675000), "1234567.5");
  EXPECT_EQ(FormatAmount(-12345675000), "-1234567.5");
}

TEST(ResourceSet, ToString) {
  EXPECT_EQ(ResourceSet().ToString(), "{}");
  EXPECT_EQ(Res({{"GPU", 0.5}, {"CPU", 2}}).ToString(), "{CPU: 2, GPU: 0.5}");
}

TEST(ResourceSet, DescribeShortfall) {
  ResourceSet node = Res({{"CPU", 2}, {"GPU", 1}});
  EXPECT_EQ(node.DescribeShortfall(Res({{"CPU", 1}})), "");
  std::string one = node.DescribeShortfall(Res({{"CPU", 64}, {"GPU", 1}}));
  EXPECT_NE(one.find("CPU: 64"), std::string::npos) << one;
  EXPECT_NE(one.find("2"), std::string::npos) << one;
  EXPECT_EQ(one.find("GPU"), std::string::npos) << "a satisfied name is not a shortfall: " << one;
  std::string two = node.DescribeShortfall(Res({{"CPU", 2.5}, {"TPU", 0.25}}));
  EXPECT_NE(two.find("CPU: 2.5"), std::string::npos) << two;
  EXPECT_NE(two.find("TPU: 0.25"), std::string::npos) << two;
  EXPECT_NE(two.find(", "), std::string::npos) << two;
  EXPECT_NE(two.find("0)"), std::string::npos) << "the node has no TPU: " << two;
}

// ------------------------------------------------------------------------------- TaskQueue

std::vector<TaskID> PopAll(TaskQueue& q, bool release) {
  std::vector<TaskID> out;
  while (auto next = q.PopRunnable()) {
    out.push_back(next->first);
    if (release) q.Release(next->second);
  }
  return out;
}

TEST(TaskQueue, FifoWithinAClass) {
  TaskQueue q(Res({{"CPU", 1}}));
  for (uint32_t i = 0; i < 10; ++i) q.Push(T(i), Res({{"CPU", 1}}));
  EXPECT_EQ(q.size(), 10u);
  std::vector<TaskID> order;
  for (uint32_t i = 0; i < 10; ++i) {
    auto next = q.PopRunnable();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->second, Res({{"CPU", 1}}));
    order.push_back(next->first);
    EXPECT_FALSE(q.PopRunnable().has_value()) << "only one CPU";
    q.Release(next->second);
  }
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(order[i], T(i));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.PopRunnable().has_value());
}

TEST(TaskQueue, PopAcquiresAndReleaseReturns) {
  TaskQueue q(Res({{"CPU", 4}, {"GPU", 1}}));
  q.Push(T(1), Res({{"CPU", 1.5}, {"GPU", 1}}));
  auto next = q.PopRunnable();
  ASSERT_TRUE(next);
  EXPECT_EQ(q.available(), Res({{"CPU", 2.5}}));
  EXPECT_EQ(q.total(), Res({{"CPU", 4}, {"GPU", 1}}));
  q.Release(next->second);
  EXPECT_EQ(q.available(), q.total());
}

TEST(TaskQueue, RoundRobinBetweenClasses) {
  TaskQueue q(Res({{"CPU", 100}}));
  ResourceSet a = Res({{"CPU", 1}}), b = Res({{"CPU", 2}}), c = Res({{"CPU", 3}});
  // All of class a is submitted first; it must still not starve b and c.
  for (uint32_t i = 0; i < 4; ++i) q.Push(T(100 + i), a);
  for (uint32_t i = 0; i < 4; ++i) q.Push(T(200 + i), b);
  for (uint32_t i = 0; i < 4; ++i) q.Push(T(300 + i), c);
  std::vector<TaskID> order = PopAll(q, true);
  ASSERT_EQ(order.size(), 12u);
  // Each window of three consecutive pops serves every class once, each class in FIFO order.
  for (size_t round = 0; round < 4; ++round) {
    std::set<uint32_t> classes;
    for (size_t k = 0; k < 3; ++k) {
      uint32_t seq = order[round * 3 + k].Sequence();
      classes.insert(seq / 100);
      EXPECT_EQ(seq % 100, round) << "FIFO within class " << seq / 100;
    }
    EXPECT_EQ(classes.size(), 3u) << "round " << round;
  }
}

TEST(TaskQueue, RoundRobinSurvivesAClassEmptying) {
  TaskQueue q(Res({{"CPU", 100}}));
  ResourceSet a = Res({{"CPU", 1}}), b = Res({{"CPU", 2}}), c = Res({{"CPU", 3}});
  q.Push(T(1), a);
  q.Push(T(2), a);
  q.Push(T(3), b);  // b empties after one pop
  q.Push(T(4), c);
  q.Push(T(5), c);
  std::vector<TaskID> order = PopAll(q, true);
  EXPECT_EQ(order, (std::vector<TaskID>{T(1), T(3), T(4), T(2), T(5)}));
}

TEST(TaskQueue, RoundRobinWithNewClassesArriving) {
  TaskQueue q(Res({{"CPU", 100}}));
  ResourceSet a = Res({{"CPU", 1}}), b = Res({{"CPU", 2}});
  for (uint32_t i = 0; i < 3; ++i) q.Push(T(10 + i), a);
  auto first = q.PopRunnable();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first, T(10));
  q.Push(T(20), b);
  q.Push(T(21), b);
  auto second = q.PopRunnable();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->first, T(20)) << "the class served last goes to the back";
  auto third = q.PopRunnable();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->first, T(11));
}

TEST(TaskQueue, ClassThatDoesNotFitNowDoesNotBlockOthers) {
  TaskQueue q(Res({{"CPU", 4}}));
  q.Acquire(Res({{"CPU", 2}}));  // e.g. a worker holds two CPUs
  q.Push(T(1), Res({{"CPU", 3}}));  // feasible, but not now
  for (uint32_t i = 0; i < 3; ++i) q.Push(T(10 + i), Res({{"CPU", 1}}));
  EXPECT_TRUE(q.HasRunnable());
  auto a = q.PopRunnable();
  auto b = q.PopRunnable();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->first, T(10));
  EXPECT_EQ(b->first, T(11));
  EXPECT_FALSE(q.HasRunnable());
  EXPECT_FALSE(q.PopRunnable());
  EXPECT_TRUE(q.InfeasibleClasses().empty()) << "CPU: 3 fits the node, just not now";
  q.Release(a->second);
  q.Release(b->second);
  q.Release(Res({{"CPU", 2}}));
  // Round robin: the big class was skipped last time, so it is next now that it fits.
  auto c = q.PopRunnable();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, T(1));
  auto d = q.PopRunnable();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, T(12));
  EXPECT_EQ(q.size(), 0u);
}

TEST(TaskQueue, InfeasibleClassNeverBlocksOthersAndIsReported) {
  TaskQueue q(Res({{"CPU", 2}}));
  q.Push(T(1), Res({{"CPU", 64}}));
  q.Push(T(2), Res({{"GPU", 1}}));
  for (uint32_t i = 0; i < 5; ++i) q.Push(T(10 + i), Res({{"CPU", 1}}));
  EXPECT_FALSE(q.IsFeasible(Res({{"CPU", 64}})));
  EXPECT_TRUE(q.IsFeasible(Res({{"CPU", 2}})));

  std::vector<TaskID> ran;
  for (int i = 0; i < 5; ++i) {
    auto next = q.PopRunnable();
    ASSERT_TRUE(next) << i;
    ran.push_back(next->first);
    q.Release(next->second);
  }
  for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(ran[i], T(10 + i));
  EXPECT_FALSE(q.PopRunnable());
  EXPECT_FALSE(q.HasRunnable());
  EXPECT_EQ(q.size(), 2u);

  auto infeasible = q.InfeasibleClasses();
  ASSERT_EQ(infeasible.size(), 2u);
  std::map<std::string, std::string> by_demand;
  for (const auto& [demand, text] : infeasible) by_demand[demand.ToString()] = text;
  ASSERT_TRUE(by_demand.count("{CPU: 64}"));
  ASSERT_TRUE(by_demand.count("{GPU: 1}"));
  EXPECT_NE(by_demand["{CPU: 64}"].find("CPU: 64"), std::string::npos) << by_demand["{CPU: 64}"];
  EXPECT_NE(by_demand["{CPU: 64}"].find("2"), std::string::npos) << by_demand["{CPU: 64}"];
  EXPECT_NE(by_demand["{GPU: 1}"].find("GPU: 1"), std::string::npos) << by_demand["{GPU: 1}"];
  EXPECT_EQ(by_demand["{GPU: 1}"].find("CPU"), std::string::npos) << by_demand["{GPU: 1}"];

  EXPECT_TRUE(q.Remove(T(1)));
  EXPECT_TRUE(q.Remove(T(2)));
  EXPECT_TRUE(q.InfeasibleClasses().empty());
  EXPECT_EQ(q.size(), 0u);
}

TEST(TaskQueue, Remove) {
  TaskQueue q(Res({{"CPU", 1}}));
  for (uint32_t i = 0; i < 5; ++i) q.Push(T(i), Res({{"CPU", 1}}));
  EXPECT_TRUE(q.Remove(T(2)));
  EXPECT_FALSE(q.Remove(T(2))) << "already removed";
  EXPECT_FALSE(q.Remove(T(99))) << "never queued";
  EXPECT_TRUE(q.Remove(T(0)));
  EXPECT_EQ(q.size(), 3u);
  auto first = q.PopRunnable();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first, T(1));
  EXPECT_FALSE(q.Remove(T(1))) << "popped tasks are no longer queued";
  q.Release(first->second);
  std::vector<TaskID> rest = PopAll(q, true);
  EXPECT_EQ(rest, (std::vector<TaskID>{T(3), T(4)}));
  EXPECT_EQ(q.available(), q.total()) << "Remove never touches resources";
}

TEST(TaskQueue, RemoveTheClassServedLast) {
  TaskQueue q(Res({{"CPU", 100}}));
  ResourceSet a = Res({{"CPU", 1}}), b = Res({{"CPU", 2}}), c = Res({{"CPU", 3}});
  q.Push(T(1), a);
  q.Push(T(2), b);
  q.Push(T(3), b);
  q.Push(T(4), c);
  auto first = q.PopRunnable();  // serves a, which empties
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first, T(1));
  auto second = q.PopRunnable();  // serves b
  ASSERT_TRUE(second);
  EXPECT_EQ(second->first, T(2));
  EXPECT_TRUE(q.Remove(T(3)));  // b (the cursor's class) disappears
  auto third = q.PopRunnable();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->first, T(4));
  EXPECT_FALSE(q.PopRunnable());
  EXPECT_EQ(q.size(), 0u);
  // The queue keeps working after everything was removed or popped.
  q.Push(T(5), b);
  auto fourth = q.PopRunnable();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->first, T(5));
}

TEST(TaskQueue, EmptyDemandAlwaysRuns) {
  TaskQueue q(Res({{"CPU", 1}}));
  q.Acquire(Res({{"CPU", 1}}));
  q.Push(T(1), ResourceSet());
  EXPECT_TRUE(q.HasRunnable());
  auto next = q.PopRunnable();
  ASSERT_TRUE(next);
  EXPECT_TRUE(next->second.IsEmpty());
}

TEST(TaskQueue, OversubscribedNodeRunsNothingUntilReleased) {
  TaskQueue q(Res({{"CPU", 1}}));
  q.Acquire(Res({{"CPU", 1}}));
  q.Acquire(Res({{"CPU", 1}}));  // a worker took its CPU back after being blocked
  EXPECT_EQ(q.available().Get("CPU"), -kUnit);
  q.Push(T(1), Res({{"CPU", 1}}));
  EXPECT_FALSE(q.HasRunnable());
  EXPECT_EQ(q.CountRunnable(10), 0u);
  q.Release(Res({{"CPU", 1}}));
  EXPECT_FALSE(q.HasRunnable());
  q.Release(Res({{"CPU", 1}}));
  EXPECT_TRUE(q.HasRunnable());
}

TEST(TaskQueue, CountRunnable) {
  TaskQueue q(Res({{"CPU", 4}}));
  EXPECT_EQ(q.CountRunnable(64), 0u);
  for (uint32_t i = 0; i < 10; ++i) q.Push(T(i), Res({{"CPU", 1}}));
  EXPECT_EQ(q.CountRunnable(64), 4u) << "limited by the four CPUs";
  EXPECT_EQ(q.CountRunnable(2), 2u) << "limited by the caller";
  EXPECT_EQ(q.CountRunnable(0), 0u);
  EXPECT_EQ(q.size(), 10u) << "counting does not pop";
  EXPECT_EQ(q.available(), q.total()) << "counting does not acquire";
}

TEST(TaskQueue, CountRunnableAcrossClasses) {
  TaskQueue q(Res({{"CPU", 4}}));
  for (uint32_t i = 0; i < 3; ++i) q.Push(T(10 + i), Res({{"CPU", 1}}));
  for (uint32_t i = 0; i < 3; ++i) q.Push(T(20 + i), Res({{"CPU", 2}}));
  // Round robin: 1 + 2 + 1 CPUs fit, the second 2-CPU task does not.
  EXPECT_EQ(q.CountRunnable(64), 3u);
  q.Push(T(30), Res({{"GPU", 1}}));  // infeasible: never counted
  EXPECT_EQ(q.CountRunnable(64), 3u);
}

TEST(TaskQueue, CountRunnableWithEmptyDemand) {
  TaskQueue q(Res({{"CPU", 1}}));
  for (uint32_t i = 0; i < 5; ++i) q.Push(T(i), ResourceSet());
  EXPECT_EQ(q.CountRunnable(64), 5u) << "bounded by the tasks queued";
  for (uint32_t i = 5; i < 200; ++i) q.Push(T(i), ResourceSet());
  EXPECT_EQ(q.CountRunnable(64), 64u) << "bounded by the limit";
}

TEST(TaskQueue, CountRunnableMatchesWhatPopRunnableStarts) {
  TaskQueue q(Res({{"CPU", 3}, {"GPU", 1}}));
  q.Push(T(1), Res({{"CPU", 1}, {"GPU", 1}}));
  q.Push(T(2), Res({{"CPU", 1}, {"GPU", 1}}));
  q.Push(T(3), Res({{"CPU", 0.5}}));
  q.Push(T(4), Res({{"CPU", 0.5}}));
  q.Push(T(5), Res({{"CPU", 0.5}}));
  q.Push(T(6), Res({{"CPU", 0.5}}));
  q.Push(T(7), Res({{"CPU", 0.5}}));
  size_t counted = q.CountRunnable(64);
  size_t popped = PopAll(q, false).size();
  EXPECT_EQ(counted, popped);
  EXPECT_EQ(popped, 5u);  // GPU task (1 CPU) + four half-CPU tasks
}

TEST(TaskQueue, TakeFollowersTakesInOrderWithoutAcquiring) {
  TaskQueue q(Res({{"CPU", 2}}));
  for (uint32_t i = 1; i <= 6; ++i) q.Push(T(i), Res({{"CPU", 1}}));
  q.Push(T(9), Res({{"CPU", 2}}));
  auto first = q.PopRunnable();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->first, T(1));
  auto followers = q.TakeFollowers(Res({{"CPU", 1}}), 3, [](const TaskID&) { return true; });
  EXPECT_EQ(followers, (std::vector<TaskID>{T(2), T(3), T(4)}));
  EXPECT_EQ(q.available().Get("CPU"), 1 * kUnit) << "followers run on the first task's CPU";
  EXPECT_EQ(q.QueuedInClass(Res({{"CPU", 1}})), 2u);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_FALSE(q.Remove(T(3))) << "taken tasks are no longer queued";
}

TEST(TaskQueue, TakeFollowersStopsAtTheFirstRefusal) {
  TaskQueue q(Res({{"CPU", 1}}));
  for (uint32_t i = 1; i <= 4; ++i) q.Push(T(i), Res({{"CPU", 1}}));
  auto taken = q.TakeFollowers(Res({{"CPU", 1}}), 10, [](const TaskID& t) { return t != T(3); });
  EXPECT_EQ(taken, (std::vector<TaskID>{T(1), T(2)}));
  EXPECT_EQ(q.QueuedInClass(Res({{"CPU", 1}})), 2u);
  EXPECT_TRUE(q.TakeFollowers(Res({{"GPU", 1}}), 10, [](const TaskID&) { return true; }).empty());
}

TEST(TaskQueue, PushFrontKeepsAGivenBackTaskFirst) {
  TaskQueue q(Res({{"CPU", 1}}));
  q.Push(T(5), Res({{"CPU", 1}}));
  q.PushFront(T(4), Res({{"CPU", 1}}));
  q.PushFront(T(3), Res({{"CPU", 1}}));
  auto next = q.PopRunnable();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->first, T(3));
  EXPECT_TRUE(q.Remove(T(4)));
  EXPECT_EQ(q.size(), 1u);
}

// ------------------------------------------------------------------------------ priorities

std::vector<TaskID> PopAll(TaskQueue& q) {
  std::vector<TaskID> out;
  while (auto next = q.PopRunnable()) {
    out.push_back(next->first);
    q.Release(next->second);
  }
  return out;
}

TEST(TaskQueuePriority, HigherFirstAndFifoWithinAPriority) {
  TaskQueue q(Res({{"CPU", 1}}));
  ResourceSet d = Res({{"CPU", 1}});
  q.Push(T(1), d);
  q.Push(T(2), d, 5);
  q.Push(T(3), d);
  q.Push(T(4), d, 5);
  q.Push(T(5), d, -3);
  q.Push(T(6), d, 9);
  q.Push(T(7), d, -3);
  EXPECT_EQ(PopAll(q), (std::vector<TaskID>{T(6), T(2), T(4), T(1), T(3), T(5), T(7)}));
}

TEST(TaskQueuePriority, LateHighPriorityTasksOvertakeAQueueOfLowOnes) {
  TaskQueue q(Res({{"CPU", 1}}));
  ResourceSet d = Res({{"CPU", 1}});
  for (uint32_t i = 0; i < 200; ++i) q.Push(T(i), d);
  for (uint32_t i = 0; i < 3; ++i) q.Push(T(1000 + i), d, 1);
  auto order = PopAll(q);
  ASSERT_EQ(order.size(), 203u);
  EXPECT_EQ(order[0], T(1000));
  EXPECT_EQ(order[1], T(1001));
  EXPECT_EQ(order[2], T(1002));
  for (uint32_t i = 0; i < 200; ++i) EXPECT_EQ(order[3 + i], T(i));
}

TEST(TaskQueuePriority, OnlyWithinAClass) {
  // Classes stay round-robin: a high priority in one class does not starve another class.
  TaskQueue q(Res({{"CPU", 10}}));
  ResourceSet a = Res({{"CPU", 1}}), b = Res({{"CPU", 2}});
  q.Push(T(1), a);
  q.Push(T(2), a);
  q.Push(T(3), b, 100);
  q.Push(T(4), b, 100);
  std::set<TaskID> first_two;
  for (int i = 0; i < 2; ++i) {
    auto next = q.PopRunnable();
    ASSERT_TRUE(next);
    first_two.insert(next->first);
  }
  EXPECT_EQ(first_two.count(T(1)) + first_two.count(T(3)), 2u);
}

TEST(TaskQueuePriority, PushFrontKeepsItsTurnWithinItsPriority) {
  TaskQueue q(Res({{"CPU", 1}}));
  ResourceSet d = Res({{"CPU", 1}});
  q.Push(T(1), d, 2);
  q.Push(T(2), d);
  q.Push(T(3), d);
  q.PushFront(T(4), d);     // given back: ahead of the other priority-0 tasks, behind priority 2
  q.PushFront(T(5), d, 2);  // ahead of everything
  EXPECT_EQ(PopAll(q), (std::vector<TaskID>{T(5), T(1), T(4), T(2), T(3)}));
}

TEST(TaskQueuePriority, RemoveTakeFollowersAndTakeNewestSeeTheOrder) {
  TaskQueue q(Res({{"CPU", 1}}));
  ResourceSet d = Res({{"CPU", 1}});
  q.Push(T(1), d);
  q.Push(T(2), d, 1);
  q.Push(T(3), d);
  q.Push(T(4), d, 1);
  EXPECT_TRUE(q.Remove(T(4)));
  auto newest = q.TakeNewest(d, 1, [](const TaskID&) { return true; });
  EXPECT_EQ(newest, (std::vector<TaskID>{T(3)}));
  auto followers = q.TakeFollowers(d, 10, [](const TaskID&) { return true; });
  EXPECT_EQ(followers, (std::vector<TaskID>{T(2), T(1)}));
  EXPECT_EQ(q.size(), 0u);
}

TEST(TaskQueueAccept, ClassesWhoseHeadIsRefusedArePassedOverInOrder) {
  // How the node keeps a task to workers of its runtime environment: the dispatcher refuses
  // heads with no idle worker of their environment, and other classes still run.
  TaskQueue q(Res({{"CPU", 4}}));
  ResourceSet one = Res({{"CPU", 1}}), two = Res({{"CPU", 2}});
  TaskID a = T(1), b = T(2), c = T(3);
  q.Push(a, one);
  q.Push(b, one);
  q.Push(c, two);
  std::vector<TaskID> refused;
  auto only_c = [&](const TaskID& t) {
    if (t == c) return true;
    refused.push_back(t);
    return false;
  };
  auto first = q.PopRunnable(only_c);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->first, c);
  EXPECT_EQ(first->second, two);
  EXPECT_EQ(refused, std::vector<TaskID>{a}) << "only a class's head is asked about";
  EXPECT_EQ(q.available().Get("CPU"), 2 * kUnit);
  // Everything left is refused: nothing is taken and nothing acquired.
  EXPECT_FALSE(q.PopRunnable([](const TaskID&) { return false; }).has_value());
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.available().Get("CPU"), 2 * kUnit);
  // The refused class kept its order.
  EXPECT_EQ(q.PopRunnable()->first, a);
  EXPECT_EQ(q.PopRunnable()->first, b);
}


}  // namespace
}  // namespace quanta

