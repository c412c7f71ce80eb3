#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
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

namespace {

Result<sockaddr_in> Resolve(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return Status::InvalidArgument("cannot resolve host '" + host + "': " + gai_strerror(rc));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return addr;
}

}  // namespace

void TuneTcp(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  int idle = 10, interval = 5, count = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  unsigned int user_timeout_ms = 10000;  // unacknowledged data for this long: the peer is gone
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

Result<int> ConnectTcpNonBlocking(const std::string& host, uint16_t port) {
  auto addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  TuneTcp(fd);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr.value()), sizeof(sockaddr_in)) < 0 && errno != EINPROGRESS) {
    Status st = Status::FromErrno("connect to " + host + ":" + std::to_string(port));
    ::close(fd);
    return st;
  }
  return fd;
}

Result<int> ConnectTcp(const std::string& host, uint16_t port, int timeout_ms) {
  auto fd = ConnectTcpNonBlocking(host, port);
  if (!fd.ok()) return fd;
  pollfd pfd{fd.value(), POLLOUT, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  int err = 0;
  socklen_t len = sizeof err;
  if (rc == 0) err = ETIMEDOUT;
  else getsockopt(fd.value(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    ::close(fd.value());
    std::string what = host + ":" + std::to_string(port);
    if (err == ETIMEDOUT) return Status::TimedOut("could not reach " + what + " within " + std::to_string(timeout_ms) + " ms (host unreachable, or a firewall drops the packets)");
    if (err == ECONNREFUSED) return Status::IOError("connection to " + what + " refused: nothing listens there (is the head running, and is the port right?)");
    errno = err;
    return Status::FromErrno("connect to " + what);
  }
  int flags = fcntl(fd.value(), F_GETFL, 0);
  fcntl(fd.value(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return Status::InvalidArgument("'" + address + "' is not an address of the form HOST:PORT (e.g. 10.0.0.1:6380)");
  }
  char* end = nullptr;
  long p = std::strtol(address.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) {
    return Status::InvalidArgument("'" + address + "' has an invalid port (want 1-65535)");
  }
  *host = address.substr(0, colon);
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

std::string PeerName(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || addr.sin_family != AF_INET) return "?";
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(addr.sin_port));
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
