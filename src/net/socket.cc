#include "net/socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace quanta::net {
namespace {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path too long (" + std::to_string(path.size()) +
                                   " bytes, limit " + std::to_string(sizeof(addr.sun_path) - 1) +
                                   "): " + path + "; use a shorter temp dir (TMPDIR)");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

Status SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return Status::FromErrno("fcntl");
  return Status::Ok();
}

Result<int> ListenUnix(const std::string& path) {
  auto addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  ::unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr.value()), sizeof(sockaddr_un)) < 0 ||
      listen(fd, 512) < 0) {
    Status st = Status::FromErrno("bind/listen " + path);
    ::close(fd);
    return st;
  }
  return fd;
}

Result<int> ConnectUnix(const std::string& path, bool nonblocking) {
  auto addr = UnixAddress(path);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr.value()), sizeof(sockaddr_un)) < 0) {
    Status st = Status::FromErrno("connect " + path);
    ::close(fd);
    return st;
  }
  if (nonblocking) {
    Status st = SetNonBlocking(fd);
    if (!st.ok()) {
      ::close(fd);
      return st;
    }
  }
  return fd;
}

Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("send");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace quanta::net
