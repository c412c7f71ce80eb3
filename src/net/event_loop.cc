#include "net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "common/logging.h"

namespace quanta::net {

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status EventLoop::Init() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::FromErrno("epoll_create1");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::FromErrno("eventfd");
  return Add(wake_fd_, EPOLLIN, [this](uint32_t) {
    uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
    std::vector<Callback> posted;
    {
      std::lock_guard<std::mutex> lock(posted_mu_);
      posted.swap(posted_);
    }
    for (auto& cb : posted) cb();
  });
}

Status EventLoop::Add(int fd, uint32_t events, FdHandler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) return Status::FromErrno("epoll_ctl add");
  handlers_[fd] = std::make_shared<FdHandler>(std::move(handler));
  return Status::Ok();
}

Status EventLoop::Modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) < 0) return Status::FromErrno("epoll_ctl mod");
  return Status::Ok();
}

void EventLoop::Remove(int fd) {
  if (handlers_.erase(fd) > 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::RunAfter(std::chrono::milliseconds delay, Callback cb) {
  timers_.push(Timer{Clock::now() + delay, timer_seq_++, std::move(cb)});
}

void EventLoop::Stop() {
  stopping_ = true;
  Wake();
}

void EventLoop::Post(Callback cb) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(cb));
  }
  Wake();
}

void EventLoop::Wake() {
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
}

int EventLoop::NextTimeoutMs() const {
  if (timers_.empty()) return -1;
  auto delta = std::chrono::duration_cast<std::chrono::milliseconds>(timers_.top().when -
                                                                     Clock::now());
  return delta.count() <= 0 ? 0 : static_cast<int>(delta.count()) + 1;
}

void EventLoop::RunDueTimers() {
  auto now = Clock::now();
  while (!timers_.empty() && timers_.top().when <= now) {
    Callback cb = std::move(const_cast<Timer&>(timers_.top()).cb);
    timers_.pop();
    cb();
  }
}

int EventLoop::Wait(epoll_event* events, int max_events) {
  SpinBudget* spin = spin_;
  spin_ = nullptr;
  if (spin != nullptr && NextTimeoutMs() != 0) {
    auto budget = spin->Next();
    if (budget.count() > 0) {
      auto start = Clock::now(), until = start + budget;
      int n = 0;
      auto now = start;
      while (n == 0 && now < until && !stopping_ && NextTimeoutMs() != 0) {
        n = epoll_wait(epoll_fd_, events, max_events, 0);
        now = Clock::now();
      }
      if (n < 0 && errno != EINTR) return n;
      bool caught = n > 0 || now < until;  // an event, a due timer or Stop() ended it
      spin->Report(caught, std::chrono::duration_cast<std::chrono::microseconds>(now - start));
      if (n > 0 || NextTimeoutMs() == 0) return std::max(n, 0);
    }
  }
  return epoll_wait(epoll_fd_, events, max_events, NextTimeoutMs());
}

void EventLoop::Run() {
  constexpr int kMaxEvents = 128;
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    int n = Wait(events, kMaxEvents);
    if (n < 0) {
      if (errno == EINTR) continue;
      QLOG(kError) << "epoll_wait failed: " << Status::FromErrno("epoll_wait").message();
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;  // removed by an earlier handler this iteration
      auto handler = it->second;            // keep alive even if the handler removes itself
      (*handler)(events[i].events);
    }
    // End-of-iteration hooks first: they may produce output (e.g. dispatched tasks) that the
    // zero-delay flush timers then send in this same iteration.
    for (auto& hook : end_hooks_) hook();
    RunDueTimers();
  }
  stopping_ = false;  // the Stop() was consumed: a later Run() runs again
}

}  // namespace quanta::net
