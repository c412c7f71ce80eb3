#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace quanta {

Status Status::FromErrno(const std::string& what) {
  int err = errno;
  return Status(StatusCode::kIOError, what + ": " + std::strerror(err));
}

std::string Status::ToString() const {
  static const char* kNames[] = {"OK",       "InvalidArgument", "NotFound",
                                 "IOError",  "ProtocolError",   "TimedOut",
                                 "Cancelled", "ResourceExhausted", "Internal"};
  std::string out = kNames[static_cast<int>(code_)];
  if (!message_.empty()) out += ": " + message_;
  return out;
}

}  // namespace quanta
