// A small single-threaded reactor over epoll.
//
// Owns nothing but its epoll fd, wake-up eventfd and the callbacks registered with it; callers
// own their file descriptors. Callbacks run on the thread that calls Run(). Besides fd events
// it offers one-shot timers and "end of iteration" hooks, which the daemons use to flush all
// buffered output once per iteration (so messages produced while handling a burst of input
// leave in a few large writes rather than many small ones).
//
// Thread-safety: everything except Stop(), Wake() and Post() must be called on the loop thread.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "net/spin_budget.h"

namespace quanta::net {

class EventLoop {
 public:
  using FdHandler = std::function<void(uint32_t events)>;
  using Callback = std::function<void()>;
  using Clock = std::chrono::steady_clock;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Status Init();
  Status Add(int fd, uint32_t events, FdHandler handler);
  Status Modify(int fd, uint32_t events);
  void Remove(int fd);

  void RunAfter(std::chrono::milliseconds delay, Callback cb);
  // Called at the end of every iteration, after all ready events were handled.
  void AtEndOfIteration(Callback cb) { end_hooks_.push_back(std::move(cb)); }

  void Run();   // returns after Stop(); may be called again (tests drive a loop in phases)
  void Stop();  // any thread
  void Wake();  // any thread: makes Run() go through an iteration
  // Any thread: runs `cb` on the loop thread soon (in order of posting).
  void Post(Callback cb);
  // The next wait first polls without sleeping, for as long as `budget` allows (it ends at the
  // first event or due timer), then sleeps as usual; the spin's outcome is reported to
  // `budget`, which must outlive the loop's next iteration. For a reply expected within
  // microseconds (net/spin_budget.h says when that pays).
  void SpinBeforeNextWait(SpinBudget* budget) { spin_ = budget; }

 private:
  struct Timer {
    Clock::time_point when;
    uint64_t seq;
    Callback cb;
    bool operator>(const Timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  int NextTimeoutMs() const;
  void RunDueTimers();
  int Wait(epoll_event* events, int max_events);

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  uint64_t timer_seq_ = 0;
  SpinBudget* spin_ = nullptr;  // asked for by this iteration: poll before the next sleep
  std::unordered_map<int, std::shared_ptr<FdHandler>> handlers_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::vector<Callback> end_hooks_;
  std::mutex posted_mu_;
  std::vector<Callback> posted_;  // from other threads, run on the loop thread
};

}  // namespace quanta::net
