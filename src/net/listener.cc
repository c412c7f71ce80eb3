#include "net/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"

namespace quanta::net {

namespace {
constexpr auto kPauseOnFdLimit = std::chrono::milliseconds(100);

int OpenReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

Listener::Listener(EventLoop* loop, int fd, AcceptHandler on_accept)
    : loop_(loop), fd_(fd), reserve_fd_(OpenReserve()), on_accept_(std::move(on_accept)) {}

Listener::~Listener() {
  loop_->Remove(fd_);
  ::close(fd_);
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

Status Listener::Start() {
  return loop_->Add(fd_, EPOLLIN, [this](uint32_t) { OnReadable(); });
}

Result<std::unique_ptr<Listener>> Listener::Unix(EventLoop* loop, const std::string& path, mode_t mode,
                                                 AcceptHandler on_accept) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path too long (" + std::to_string(path.size()) + " bytes, limit " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + "): " + path +
                                   "; use a shorter temp dir (TMPDIR)");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  ::unlink(path.c_str());
  // Bind with a restrictive umask so the socket is never reachable with wider permissions,
  // even for an instant, whatever the caller's umask.
  mode_t old = ::umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc < 0 || ::chmod(path.c_str(), mode) < 0 || listen(fd, 512) < 0) {
    Status st = Status::FromErrno("bind/listen " + path);
    ::close(fd);
    return st;
  }
  std::unique_ptr<Listener> l(new Listener(loop, fd, std::move(on_accept)));
  l->unix_path_ = path;
  QUANTA_RETURN_IF_ERROR(l->Start());
  return l;
}

Result<std::unique_ptr<Listener>> Listener::Tcp(EventLoop* loop, const std::string& host, uint16_t port,
                                                AcceptHandler on_accept) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  std::string ip = host.empty() ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument("not an IPv4 address: '" + ip + "'");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) {
      return Status::IOError("port " + std::to_string(port) + " on " + ip +
                             " is already in use (another Quanta head or another program); choose "
                             "another with --port, or stop what uses it");
    }
    errno = err;
    return Status::FromErrno("bind " + ip + ":" + std::to_string(port));
  }
  if (listen(fd, 1024) < 0) {
    Status st = Status::FromErrno("listen");
    ::close(fd);
    return st;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::unique_ptr<Listener> l(new Listener(loop, fd, std::move(on_accept)));
  l->port_ = ntohs(addr.sin_port);
  QUANTA_RETURN_IF_ERROR(l->Start());
  return l;
}

void Listener::OnReadable() {
  if (paused_) return;
  for (int i = 0; i < 256; ++i) {
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      warned_ = false;
      on_accept_(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) {
      ShedOne();
      return;
    }
    return;  // EAGAIN, or an error that a later readiness retries
  }
}

void Listener::ShedOne() {
  ++refused_for_fd_limit_;
  if (!warned_) {
    warned_ = true;
    QLOG(kWarning) << "out of file descriptors (" << std::strerror(errno)
                   << "): refusing new connections until some close; raise `ulimit -n`";
  }
  // Accept the waiting connection with the reserved descriptor and close it at once, so the
  // listening socket stops being readable; then pause briefly instead of spinning.
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    reserve_fd_ = OpenReserve();
  }
  paused_ = true;
  Status st = loop_->Modify(fd_, 0);
  (void)st;
  std::weak_ptr<int> alive = alive_;
  loop_->RunAfter(kPauseOnFdLimit, [this, alive] {
    if (alive.expired()) return;
    paused_ = false;
    Status s = loop_->Modify(fd_, EPOLLIN);
    (void)s;
    OnReadable();
  });
}

}  // namespace quanta::net
