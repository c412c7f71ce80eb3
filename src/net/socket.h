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
// Writes all of `data` to a blocking fd, retrying on EINTR and short writes.
Status WriteAll(int fd, const char* data, size_t size);

}  // namespace quanta::net
