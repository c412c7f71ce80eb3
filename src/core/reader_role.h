// Who reads the node's socket in a driver or worker: whoever waits reads.
//
// A thread that blocks in the client (Get, Wait, NextTask, a request's reply) and finds nobody
// reading the socket reads it itself, so the message it waits for wakes it directly instead of
// waking a reader thread that then wakes it: one thread hand-off fewer per message on every
// round trip, which on a busy 2-core machine is a large share of a no-op task's cost. The
// background thread reads only when no caller has read for a grace period (1 ms: a driver busy
// in user code, a worker running a task), so pushed messages (worker output, cancellations,
// results) are never left unread for longer than that. It steps down as soon as a caller wants
// to read, after its current read. When callers keep the role for long (an idle worker waiting
// for tasks), the background thread parks without a timer and costs nothing.
//
// Ownership: a member of the CoreClient, which owns the mutex, the waiters' condition variable
// and the `closed` flag given at construction. Thread-safety: every method is called with the
// client's mutex held through `lock`; `read_once` is called with it released, by one thread at
// a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace quanta {

class ReaderRole {
 public:
  using Clock = std::chrono::steady_clock;
  // One poll-and-read of the socket, waiting at most `timeout` (negative: no limit). `spin`: the
  // caller expects its answer within microseconds and may busy-poll briefly before sleeping.
  using ReadOnce = std::function<void(std::chrono::microseconds timeout, bool spin)>;

  ReaderRole(std::condition_variable* waiters, const std::atomic<bool>* closed, ReadOnce read_once)
      : waiters_cv_(waiters), closed_(closed), read_once_(std::move(read_once)) {}

  // Waits until a message may have changed what the caller looks at: reads the socket once if
  // nobody is reading, else waits for the reader's progress. True if `deadline` (nullptr: none)
  // has passed. `spin` is passed on to the read (see ReadOnce).
  bool AwaitProgress(std::unique_lock<std::mutex>& lock, const Clock::time_point* deadline, bool spin = false);
  // The background thread's body; returns once the client is closed.
  void RunBackground(std::unique_lock<std::mutex>& lock);
  // Wakes the background thread so that it sees the client closed (no lock needed).
  void WakeBackground() { bg_cv_.notify_all(); }

 private:
  enum class Reader { kNone, kCaller, kBackground };
  std::condition_variable* waiters_cv_;
  const std::atomic<bool>* closed_;
  ReadOnce read_once_;
  Reader state_ = Reader::kNone;
  Clock::time_point since_{}, released_at_{};
  int waiters_ = 0;                       // threads waiting on *waiters_cv_ while another reads
  std::atomic<bool> want_reader_{false};  // a caller waits while the background thread reads
  bool bg_parked_ = false;                // the background thread waits on bg_cv_ without a timer
  std::condition_variable bg_cv_;
};

}  // namespace quanta
