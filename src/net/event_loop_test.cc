// Unit tests for net/event_loop.h: timers in order, posts from other threads, end-of-iteration
// hooks, a loop run again after Stop() (tests drive components in phases), and spins before a
// wait (caught, run out, ended by a due timer).
#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

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

TEST(EventLoop, ASpinCatchesAnEventThatArrivesWhileItPolls) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  // A generous budget: the write below lands long before it runs out, even on a loaded machine.
  SpinBudget budget(SpinBudget::Options{std::chrono::microseconds(2'000'000)});
  bool got = false;
  ASSERT_TRUE(loop.Add(fds[0], EPOLLIN, [&](uint32_t) {
                    char c;
                    got = ::read(fds[0], &c, 1) == 1;
                    loop.Stop();
                  }).ok());
  loop.RunAfter(0ms, [&] {
    loop.SpinBeforeNextWait(&budget);
    std::thread([fd = fds[1]] {
      std::this_thread::sleep_for(2ms);
      ssize_t n = ::write(fd, "x", 1);
      (void)n;
    }).detach();
  });
  loop.RunAfter(10s, [&] { loop.Stop(); });  // a safety net
  loop.Run();
  EXPECT_TRUE(got);
  EXPECT_EQ(budget.stats().spins, 1u);
  EXPECT_EQ(budget.stats().caught, 1u) << "the write came while the loop was polling";
  EXPECT_GE(budget.stats().spent, std::chrono::microseconds(1000));
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(EventLoop, ASpinThatRunsOutReportsAMissAndTheLoopThenSleepsUntilItsTimer) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  SpinBudget budget(SpinBudget::Options{std::chrono::microseconds(300)});
  bool fired = false;
  loop.RunAfter(0ms, [&] { loop.SpinBeforeNextWait(&budget); });
  loop.RunAfter(30ms, [&] {
    fired = true;
    loop.Stop();
  });
  loop.Run();
  EXPECT_TRUE(fired);
  EXPECT_EQ(budget.stats().missed, 1u);
  EXPECT_EQ(budget.stats().caught, 0u);
  // Polled for its budget only, not until the timer 30 ms later.
  EXPECT_LT(budget.stats().spent, std::chrono::microseconds(20'000));
  EXPECT_EQ(budget.current(), std::chrono::microseconds(150));
}

TEST(EventLoop, ADueTimerEndsASpinAtOnce) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  SpinBudget budget(SpinBudget::Options{std::chrono::microseconds(5'000'000)});
  int fired = 0;
  loop.RunAfter(0ms, [&] { loop.SpinBeforeNextWait(&budget); });
  loop.RunAfter(2ms, [&] {
    ++fired;
    loop.Stop();
  });
  auto start = std::chrono::steady_clock::now();
  loop.Run();
  EXPECT_EQ(fired, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "the spin must end when a timer is due";
}

}  // namespace
}  // namespace quanta::net
