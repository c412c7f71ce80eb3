// CRC-32C (Castagnoli) of a byte range: the checksum on every chunk of an object transfer.
// Uses the SSE4.2 crc32 instruction when the CPU has it (three interleaved streams, over
// 10 GB/s on large buffers), a table otherwise.
// An integrity check against corrupted or truncated chunks, not a cryptographic MAC.
// Thread-safety: pure function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quanta {

uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace quanta
