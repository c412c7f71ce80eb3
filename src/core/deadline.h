// Deadline for a timeout in milliseconds (timeout_ms < 0 means "no deadline"; callers then wait
// without one, and the value returned is unused).
#pragma once

#include <chrono>
#include <cstdint>

namespace quanta {

inline std::chrono::steady_clock::time_point Deadline(int64_t timeout_ms) {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
}

}  // namespace quanta
