#include "net/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

namespace quanta::net {

namespace {
EventLoop* g_loop = nullptr;
}  // namespace

void CloseOnExec(std::initializer_list<long long> fds) {
  for (long long fd : fds) {
    if (fd >= 0) fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
}

void StopLoopOnSignals(EventLoop* loop) {
  g_loop = loop;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_loop->Stop(); };  // Stop() only sets a flag and writes an eventfd
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

long RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<long>(lim.rlim_cur);
}

void SignalReady(long long fd, const std::string& detail) {
  if (fd < 0) return;
  std::string line = "ready " + detail + "\n";
  ssize_t ignored = ::write(static_cast<int>(fd), line.data(), line.size());
  (void)ignored;
  ::close(static_cast<int>(fd));
}

}  // namespace quanta::net
