#include "core/reader_role.h"

#include <algorithm>

namespace quanta {

namespace {
constexpr auto kReaderGrace = std::chrono::milliseconds(1);
constexpr auto kParkAfter = std::chrono::milliseconds(50);
}  // namespace

bool ReaderRole::AwaitProgress(std::unique_lock<std::mutex>& lock, const Clock::time_point* deadline, bool spin) {
  if (*closed_) return false;
  if (state_ == Reader::kNone) {
    state_ = Reader::kCaller;
    since_ = Clock::now();
    lock.unlock();
    auto timeout = std::chrono::microseconds(-1);
    if (deadline != nullptr) {
      timeout = std::max(std::chrono::microseconds(0),
                         std::chrono::ceil<std::chrono::microseconds>(*deadline - Clock::now()));
    }
    read_once_(timeout, spin);
    lock.lock();
    state_ = Reader::kNone;
    released_at_ = Clock::now();
    if (waiters_ > 0) waiters_cv_->notify_all();  // one of them reads next if this caller is done
    if (bg_parked_) bg_cv_.notify_one();
  } else {
    if (state_ == Reader::kBackground) want_reader_ = true;
    ++waiters_;
    if (deadline == nullptr) {
      waiters_cv_->wait(lock);
    } else {
      waiters_cv_->wait_until(lock, *deadline);
    }
    --waiters_;
  }
  return deadline != nullptr && Clock::now() >= *deadline;
}

void ReaderRole::RunBackground(std::unique_lock<std::mutex>& lock) {
  while (!*closed_) {
    auto now = Clock::now();
    if (state_ == Reader::kNone) {
      if (now - released_at_ < kReaderGrace) {
        bg_cv_.wait_until(lock, released_at_ + kReaderGrace);
        continue;
      }
      state_ = Reader::kBackground;
      want_reader_ = false;
      lock.unlock();
      while (!*closed_ && !want_reader_) read_once_(std::chrono::microseconds(-1), false);
      lock.lock();
      state_ = Reader::kNone;
      released_at_ = Clock::now();
      waiters_cv_->notify_all();  // the caller that asked for the reader role takes it
    } else if (now - since_ > kParkAfter) {
      bg_parked_ = true;
      bg_cv_.wait(lock);
      bg_parked_ = false;
    } else {
      bg_cv_.wait_for(lock, kReaderGrace);
    }
  }
}

}  // namespace quanta
