// ReaderRole: one reader at a time, callers read themselves, the background thread reads only
// when no caller has, and waits end at their deadline.
#include "core/reader_role.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace quanta {
namespace {

using namespace std::chrono_literals;

struct Harness {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> closed{false};
  std::atomic<int> reading{0}, most_at_once{0};
  std::atomic<int> caller_reads{0}, background_reads{0};
  std::atomic<std::thread::id> background{};
  std::atomic<int> spinning_reads{0}, background_spins{0};
  ReaderRole role{&cv, &closed, [this](std::chrono::microseconds timeout, bool spin) {
                    if (spin) ++spinning_reads;
                    if (spin && std::this_thread::get_id() == background) ++background_spins;
                    int now = ++reading;
                    int seen = most_at_once.load();
                    while (now > seen && !most_at_once.compare_exchange_weak(seen, now)) {
                    }
                    ++(std::this_thread::get_id() == background ? background_reads : caller_reads);
                    auto nap = timeout < 0us ? 200us : std::min<std::chrono::microseconds>(timeout, 200us);
                    std::this_thread::sleep_for(nap);
                    --reading;
                    std::lock_guard<std::mutex> lock(mu);
                    cv.notify_all();  // as a frame would
                  }};
};

TEST(ReaderRoleTest, OneReaderAtATimeAndCallersReadThemselves) {
  Harness h;
  std::thread bg([&] {
    h.background = std::this_thread::get_id();
    std::unique_lock<std::mutex> lock(h.mu);
    h.role.RunBackground(lock);
  });
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        std::unique_lock<std::mutex> lock(h.mu);
        auto deadline = ReaderRole::Clock::now() + 5ms;
        h.role.AwaitProgress(lock, &deadline);
      }
    });
  }
  for (auto& c : callers) c.join();
  h.closed = true;
  h.role.WakeBackground();
  bg.join();
  EXPECT_EQ(h.most_at_once.load(), 1);
  EXPECT_GT(h.caller_reads.load(), 100);  // callers read rather than wait for the thread
}

TEST(ReaderRoleTest, TheBackgroundThreadReadsWhenNoCallerDoes) {
  Harness h;
  std::thread bg([&] {
    h.background = std::this_thread::get_id();
    std::unique_lock<std::mutex> lock(h.mu);
    h.role.RunBackground(lock);
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_GT(h.background_reads.load(), 0);
  EXPECT_EQ(h.caller_reads.load(), 0);
  // A caller that wants to read gets the role within a read or two.
  {
    std::unique_lock<std::mutex> lock(h.mu);
    for (int i = 0; i < 50 && h.caller_reads.load() == 0; ++i) {
      auto deadline = ReaderRole::Clock::now() + 5ms;
      h.role.AwaitProgress(lock, &deadline);
    }
  }
  EXPECT_GT(h.caller_reads.load(), 0);
  h.closed = true;
  h.role.WakeBackground();
  bg.join();
}

TEST(ReaderRoleTest, AWaitEndsAtItsDeadlineAndNothingWaitsOnceClosed) {
  Harness h;
  std::unique_lock<std::mutex> lock(h.mu);
  auto start = ReaderRole::Clock::now();
  auto deadline = start + 20ms;
  bool passed = false;
  while (!passed) passed = h.role.AwaitProgress(lock, &deadline);
  EXPECT_GE(ReaderRole::Clock::now(), deadline);
  h.closed = true;
  EXPECT_FALSE(h.role.AwaitProgress(lock, nullptr));  // returns at once, does not block
}

}  // namespace
}  // namespace quanta

namespace quanta {
namespace {

// Only a caller that asks for it may busy-poll; the background thread never does (it reads
// when nobody waits, so nothing is expected within microseconds).
TEST(ReaderRoleTest, OnlyCallersThatAskMaySpin) {
  Harness h;
  std::thread bg([&] {
    h.background = std::this_thread::get_id();
    std::unique_lock<std::mutex> lock(h.mu);
    h.role.RunBackground(lock);
  });
  {
    std::unique_lock<std::mutex> lock(h.mu);
    auto deadline = ReaderRole::Clock::now() + 5ms;
    for (int i = 0; i < 5; ++i) h.role.AwaitProgress(lock, &deadline);
  }
  EXPECT_EQ(h.spinning_reads.load(), 0);
  {
    std::unique_lock<std::mutex> lock(h.mu);
    auto deadline = ReaderRole::Clock::now() + 5ms;
    for (int i = 0; i < 5; ++i) h.role.AwaitProgress(lock, &deadline, /*spin=*/true);
  }
  EXPECT_GE(h.spinning_reads.load(), 1);
  std::this_thread::sleep_for(20ms);  // the background thread takes over and reads
  h.closed = true;
  h.role.WakeBackground();
  bg.join();
  EXPECT_GT(h.background_reads.load(), 0);
  EXPECT_EQ(h.background_spins.load(), 0);
}

}  // namespace
}  // namespace quanta
