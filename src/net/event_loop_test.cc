// Unit tests for net/event_loop.h: timers in order, posts from other threads, end-of-iteration
// hooks, and a loop run again after Stop() (tests drive components in phases).
#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace quanta::net {
namespace {

using namespace std::chrono_literals;

TEST(EventLoop, TimersFireInDeadlineOrder) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  std::vector<int> order;
  loop.RunAfter(30ms, [&] { order.push_back(3); });
  loop.RunAfter(10ms, [&] { order.push_back(1); });
  loop.RunAfter(10ms, [&] { order.push_back(2); });  // same deadline: in the order set
  loop.RunAfter(40ms, [&] { loop.Stop(); });
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoop, PostFromAnotherThreadRunsOnTheLoopThread) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  std::thread::id ran_on;
  std::thread poster([&] { loop.Post([&] { ran_on = std::this_thread::get_id(); loop.Stop(); }); });
  loop.RunAfter(5s, [&] { loop.Stop(); });  // a safety net, not the expected way out
  loop.Run();
  poster.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, RunsAgainAfterStop) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  int hooks = 0;
  loop.AtEndOfIteration([&] { ++hooks; });
  bool first = false, second = false;
  loop.RunAfter(1ms, [&] { first = true; loop.Stop(); });
  loop.Run();
  ASSERT_TRUE(first);
  int hooks_after_first = hooks;
  EXPECT_GT(hooks_after_first, 0);
  loop.RunAfter(1ms, [&] { second = true; loop.Stop(); });
  loop.Run();
  EXPECT_TRUE(second) << "the second Run() must process events, not return at once";
  EXPECT_GT(hooks, hooks_after_first);
}

TEST(EventLoop, StopBeforeRunReturnsAtOnce) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  bool fired = false;
  loop.RunAfter(10s, [&] { fired = true; });
  loop.Stop();
  auto start = std::chrono::steady_clock::now();
  loop.Run();
  EXPECT_FALSE(fired);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace quanta::net
