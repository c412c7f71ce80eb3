// Socket helpers: Unix-domain listeners and connections (TCP joins them for multi-node).
// Every function returns an owned file descriptor or a Status; nothing here keeps state.
#pragma once

#include <string>

#include "common/status.h"

namespace quanta::net {

// Binds and listens on a Unix socket at `path` (removing a stale file first). Non-blocking.
Result<int> ListenUnix(const std::string& path);
// Connects to the Unix socket at `path`. The returned fd is blocking unless `nonblocking`.
Result<int> ConnectUnix(const std::string& path, bool nonblocking);
Status SetNonBlocking(int fd);

// Starts a non-blocking TCP connect to host:port (IPv4 address or a resolvable name); the fd is
// writable once connected (check SO_ERROR). TCP_NODELAY and keepalive are set.
Result<int> ConnectTcpNonBlocking(const std::string& host, uint16_t port);
// Connects a blocking TCP socket within `timeout_ms` (a clear error if the host is unreachable).
Result<int> ConnectTcp(const std::string& host, uint16_t port, int timeout_ms);
// TCP_NODELAY, keepalive (idle 10 s, interval 5 s, 3 probes) and a 10 s write timeout for a peer
// that vanished without a FIN (a host unplugged).
void TuneTcp(int fd);
// Splits "host:port"; InvalidArgument with an example if malformed.
Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port);
// "ip:port" of the peer of a connected TCP socket ("?" if unknown).
std::string PeerName(int fd);
// Writes all of `data` to a blocking fd, retrying on EINTR and short writes.
Status WriteAll(int fd, const char* data, size_t size);

}  // namespace quanta::net
