// Random bytes from the kernel's CSPRNG (getrandom), for secrets such as worker tokens.
// Thread-safety: any thread.
#pragma once

#include <cstddef>
#include <string>

namespace quanta {

// `n` random bytes; aborts the process if the kernel cannot provide them (it always can on
// Linux >= 3.17 once booted), since a predictable secret is worse than no process.
std::string RandomBytes(size_t n);
// `n` random bytes as 2n lowercase hex digits.
std::string RandomHex(size_t n);
std::string ToHex(const std::string& bytes);

}  // namespace quanta
