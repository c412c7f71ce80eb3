// How long an event loop may busy-poll for a reply it expects within microseconds.
//
// A node that has just forwarded a call to another node usually gets the answer back in tens
// of microseconds. Sleeping in epoll_wait meanwhile costs a wake-up when it arrives (on a VM
// whose idle vCPU halts, that wake-up is the larger part of a hop), so the loop may instead poll
// without sleeping for a while (EventLoop::SpinBeforeNextWait). Polling only pays when the
// answer comes while polling; when the machine is busy (other processes need the core we
// would spin on) it does not, and it takes CPU from the very processes that produce the answer.
// SpinBudget adapts: every spin reports whether an event ended it (caught) or the budget ran
// out (missed). A catch restores the full budget; a miss halves it, and below `min` spinning
// stops, except for one probe at the full budget every `probe_every` requests, so that a machine
// that became quiet again is noticed.
//
// Ownership: a plain value, owned by whoever asks for spins. Thread-safety: one thread (the
// loop's).
#pragma once

#include <chrono>
#include <cstdint>

namespace quanta::net {

class SpinBudget {
 public:
  struct Options {
    std::chrono::microseconds max{100};  // 0: never spin
    std::chrono::microseconds min{10};   // a budget halved below this stops spinning
    uint32_t probe_every = 32;           // while stopped: one full-budget spin per this many requests
  };
  struct Stats {
    uint64_t requested = 0, spins = 0, caught = 0, missed = 0;
    std::chrono::microseconds spent{0};  // busy-polling, in all
  };

  SpinBudget() : SpinBudget(Options{}) {}
  explicit SpinBudget(Options options) : options_(options), current_(options.max) {}

  // The budget for the spin about to start (0: sleep at once).
  std::chrono::microseconds Next() {
    ++stats_.requested;
    if (options_.max.count() <= 0) return std::chrono::microseconds(0);
    if (current_ < options_.min) {
      if (++since_probe_ < options_.probe_every) return std::chrono::microseconds(0);
      since_probe_ = 0;
      ++stats_.spins;
      return options_.max;  // a probe
    }
    ++stats_.spins;
    return current_;
  }
  // How the spin Next() allowed ended: `caught` if an event came before its budget ran out.
  void Report(bool caught, std::chrono::microseconds spent) {
    stats_.spent += spent;
    if (caught) {
      ++stats_.caught;
      current_ = options_.max;
      since_probe_ = 0;
    } else {
      ++stats_.missed;
      current_ /= 2;
    }
  }
  std::chrono::microseconds current() const { return current_; }
  const Stats& stats() const { return stats_; }

 private:
  Options options_;
  std::chrono::microseconds current_;
  uint32_t since_probe_ = 0;
  Stats stats_;
};

}  // namespace quanta::net
