// A listening socket on the event loop that hands every accepted connection to a callback.
//
// Accepting is where a daemon meets the outside world, so this is where running out of file
// descriptors is handled: on EMFILE/ENFILE the listener logs once, gives up a reserved
// descriptor to accept and close the waiting connection (so it does not stay ready and make
// the loop spin), and stops accepting for a short while.
//
// Ownership: owns the listening fd; accepted fds belong to the callback. Thread-safety: loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "net/event_loop.h"

namespace quanta::net {

class Listener {
 public:
  using AcceptHandler = std::function<void(int fd)>;

  // A Unix-domain socket at `path` (a stale file there is replaced), chmod'ed to `mode`.
  static Result<std::unique_ptr<Listener>> Unix(EventLoop* loop, const std::string& path, mode_t mode,
                                                AcceptHandler on_accept);
  // A TCP socket on `host` (an IPv4 address; "" means 127.0.0.1) and `port` (0: any free port).
  static Result<std::unique_ptr<Listener>> Tcp(EventLoop* loop, const std::string& host, uint16_t port,
                                               AcceptHandler on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  uint16_t port() const { return port_; }  // TCP only
  uint64_t refused_for_fd_limit() const { return refused_for_fd_limit_; }

 private:
  Listener(EventLoop* loop, int fd, AcceptHandler on_accept);
  Status Start();
  void OnReadable();
  void ShedOne();

  EventLoop* loop_;
  int fd_;
  int reserve_fd_ = -1;  // given up to accept-and-close when out of descriptors
  AcceptHandler on_accept_;
  uint16_t port_ = 0;
  bool paused_ = false;
  bool warned_ = false;
  uint64_t refused_for_fd_limit_ = 0;
  std::string unix_path_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // timers check it before touching us
};

}  // namespace quanta::net
