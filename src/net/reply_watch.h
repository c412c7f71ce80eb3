// Requests whose answers are expected within microseconds, for deciding when to busy-poll.
//
// A spin that ends at the first event does not help when that event is not the answer (a
// driver's reference update often arrives just after its call). The node therefore asks for a
// spin at the end of every loop iteration while a few answers are awaited: Sent() notes a
// request, Answered() its answer, and ShouldSpin() is true while between 1 and
// `max_outstanding` requests sent within the last `max_age` are unanswered. More outstanding
// means a batch, whose answers keep the loop busy without polling (and polling would take the
// CPU the answering processes need); answers not back within max_age are not "soon" and are
// forgotten (a lost answer cannot make the loop spin for ever).
//
// Ownership: a plain value, owned by whoever sends. Thread-safety: one thread (the loop's).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

namespace quanta::net {

class ReplyWatch {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::microseconds max_age{2000};
    size_t max_outstanding = 2;
  };

  ReplyWatch() : ReplyWatch(Options{}) {}
  explicit ReplyWatch(Options options) : options_(options) {}

  void Sent(uint64_t key, Clock::time_point now) {
    sent_[key] = now;
    order_.emplace_back(now, key);
  }
  void Answered(uint64_t key) { sent_.erase(key); }
  bool empty() const { return sent_.empty(); }
  bool ShouldSpin(Clock::time_point now) {
    Expire(now);
    return !sent_.empty() && sent_.size() <= options_.max_outstanding;
  }
  size_t outstanding(Clock::time_point now) {
    Expire(now);
    return sent_.size();
  }

 private:
  void Expire(Clock::time_point now) {
    while (!order_.empty() && now - order_.front().first > options_.max_age) {
      auto it = sent_.find(order_.front().second);
      if (it != sent_.end() && it->second == order_.front().first) sent_.erase(it);
      order_.pop_front();
    }
    // Answered entries leave the map at once; drop them from the front of the order too.
    while (!order_.empty()) {
      auto it = sent_.find(order_.front().second);
      if (it != sent_.end() && it->second == order_.front().first) break;
      order_.pop_front();
    }
  }

  Options options_;
  std::unordered_map<uint64_t, Clock::time_point> sent_;     // unanswered: key -> when sent
  std::deque<std::pair<Clock::time_point, uint64_t>> order_;  // oldest first
};

}  // namespace quanta::net
