// Unit tests for scheduler/dependency_tracker.h.
#include "scheduler/dependency_tracker.h"

#include <gtest/gtest.h>

#include <vector>

namespace quanta {
namespace {

TaskID T(uint32_t n) { return ObjectID::Make(0x7777, n, 0); }
ObjectID O(uint32_t n) { return ObjectID::Make(0x8888, n, 1); }

TEST(DependencyTracker, ReadyWhenLastArgumentArrives) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1), O(2), O(3)});
  EXPECT_TRUE(deps.IsWaiting(T(1)));
  EXPECT_EQ(deps.num_waiting(), 1u);
  std::vector<TaskID> ready;
  deps.OnAvailable(O(2), &ready);
  deps.OnAvailable(O(1), &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(deps.IsWaiting(T(1)));
  deps.OnAvailable(O(3), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(1)});
  EXPECT_FALSE(deps.IsWaiting(T(1)));
  EXPECT_EQ(deps.num_waiting(), 0u);
}

TEST(DependencyTracker, ReadyIsAppendedNotReplaced) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1)});
  std::vector<TaskID> ready{T(99)};
  deps.OnAvailable(O(1), &ready);
  EXPECT_EQ(ready, (std::vector<TaskID>{T(99), T(1)}));
}

TEST(DependencyTracker, DuplicateArgumentsCountOnce) {
  // f.remote(x, x, y): x is passed twice; the task is ready once x and y are both available.
  DependencyTracker deps;
  deps.Wait(T(1), {O(1), O(1), O(2), O(1)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(deps.IsWaiting(T(1)));
  deps.OnAvailable(O(2), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(1)}) << "reported exactly once";
}

TEST(DependencyTracker, OnlyDuplicatesOfOneObject) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(5), O(5)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(5), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(1)});
  EXPECT_EQ(deps.num_waiting(), 0u);
}

TEST(DependencyTracker, SecondAvailabilityIsANoOp) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1), O(2)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  deps.OnAvailable(O(1), &ready);  // e.g. an object sealed twice
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(deps.IsWaiting(T(1)));
  deps.OnAvailable(O(2), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(1)});
}

TEST(DependencyTracker, UnrelatedObjectIsANoOp) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(42), &ready);
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(deps.IsWaiting(T(1)));
}

TEST(DependencyTracker, ManyTasksOnOneObjectInWaitOrder) {
  DependencyTracker deps;
  for (uint32_t i = 0; i < 5; ++i) deps.Wait(T(i), {O(1)});
  deps.Wait(T(10), {O(1), O(2)});
  EXPECT_EQ(deps.num_waiting(), 6u);
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  EXPECT_EQ(ready, (std::vector<TaskID>{T(0), T(1), T(2), T(3), T(4)}));
  EXPECT_TRUE(deps.IsWaiting(T(10)));
  ready.clear();
  deps.OnAvailable(O(2), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(10)});
}

TEST(DependencyTracker, Forget) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1), O(2)});
  deps.Wait(T(2), {O(1)});
  EXPECT_TRUE(deps.Forget(T(1)));
  EXPECT_FALSE(deps.IsWaiting(T(1)));
  EXPECT_FALSE(deps.Forget(T(1))) << "forgetting twice";
  EXPECT_FALSE(deps.Forget(T(3))) << "never waited";
  EXPECT_EQ(deps.num_waiting(), 1u);
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  deps.OnAvailable(O(2), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(2)}) << "a forgotten task is never reported";
}

TEST(DependencyTracker, ForgetThenWaitAgainCountsOnlyTheNewArguments) {
  // A task id that was forgotten (cancelled) and then registered again must wait for its new
  // arguments only; stale registrations from before Forget must not count towards it.
  DependencyTracker deps;
  deps.Wait(T(1), {O(1)});
  ASSERT_TRUE(deps.Forget(T(1)));
  deps.Wait(T(1), {O(2)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  EXPECT_TRUE(ready.empty()) << "ready before its argument O(2) is available";
  EXPECT_TRUE(deps.IsWaiting(T(1)));
  deps.OnAvailable(O(2), &ready);
  EXPECT_EQ(ready, std::vector<TaskID>{T(1)});
}

TEST(DependencyTracker, ForgetAfterReadyReturnsFalse) {
  DependencyTracker deps;
  deps.Wait(T(1), {O(1)});
  std::vector<TaskID> ready;
  deps.OnAvailable(O(1), &ready);
  EXPECT_FALSE(deps.Forget(T(1)));
}

TEST(DependencyTracker, ManyTasksManyObjects) {
  DependencyTracker deps;
  // Task i waits for objects 0..i.
  const uint32_t n = 200;
  for (uint32_t i = 0; i < n; ++i) {
    std::vector<ObjectID> args;
    for (uint32_t j = 0; j <= i; ++j) args.push_back(O(j));
    deps.Wait(T(i), args);
  }
  for (uint32_t j = 0; j < n; ++j) {
    std::vector<TaskID> ready;
    deps.OnAvailable(O(j), &ready);
    ASSERT_EQ(ready, std::vector<TaskID>{T(j)}) << "object " << j;
  }
  EXPECT_EQ(deps.num_waiting(), 0u);
}

}  // namespace
}  // namespace quanta
