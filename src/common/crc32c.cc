#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace quanta {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t Portable(const uint8_t* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = MakeTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

// Appending n zero bytes to a message maps its CRC register through a linear operator over
// GF(2); Shift applies the operator for a fixed n with four byte-indexed tables. With it, three
// independent crc32 streams over three adjacent blocks are combined into one CRC:
//   crc(A B) = shift_|B|(crc(A)) ^ crc_from_zero(B).
struct ZerosTable {
  uint32_t t[4][256];
};

uint32_t Times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec != 0; vec >>= 1, ++mat) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}

void Square(uint32_t* out, const uint32_t* mat) {
  for (int i = 0; i < 32; ++i) out[i] = Times(mat, mat[i]);
}

// The operator for `bytes` zero bytes (a power of two).
ZerosTable MakeZeros(size_t bytes) {
  uint32_t op[32], tmp[32];
  op[0] = kPoly;  // one zero bit
  for (int i = 1; i < 32; ++i) op[i] = 1u << (i - 1);
  for (size_t bits = 1; bits < bytes * 8; bits <<= 1) {  // square: twice as many zero bits
    Square(tmp, op);
    std::memcpy(op, tmp, sizeof op);
  }
  ZerosTable z;
  for (uint32_t n = 0; n < 256; ++n) {
    for (int k = 0; k < 4; ++k) z.t[k][n] = Times(op, n << (8 * k));
  }
  return z;
}

inline uint32_t Shift(const ZerosTable& z, uint32_t crc) {
  return z.t[0][crc & 0xFF] ^ z.t[1][(crc >> 8) & 0xFF] ^ z.t[2][(crc >> 16) & 0xFF] ^ z.t[3][crc >> 24];
}

#if defined(__x86_64__)
constexpr size_t kLongBlock = 8192, kShortBlock = 256;

// The crc32 instruction has a latency of 3 cycles and a throughput of 1: three streams over
// three adjacent blocks keep it busy (about 3x one stream), then Shift merges them.
__attribute__((target("sse4.2"))) uint64_t ThreeWay(const uint8_t*& p, size_t& n, uint64_t c, size_t block,
                                                   const ZerosTable& z) {
  while (n >= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < block; i += 8) {
      uint64_t v0, v1, v2;
      std::memcpy(&v0, p + i, 8);
      std::memcpy(&v1, p + block + i, 8);
      std::memcpy(&v2, p + 2 * block + i, 8);
      c = _mm_crc32_u64(c, v0);
      c1 = _mm_crc32_u64(c1, v1);
      c2 = _mm_crc32_u64(c2, v2);
    }
    c = Shift(z, static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(c1);
    c = Shift(z, static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(c2);
    p += 3 * block;
    n -= 3 * block;
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t Hardware(const uint8_t* p, size_t n, uint32_t crc) {
  static const ZerosTable long_zeros = MakeZeros(kLongBlock);
  static const ZerosTable short_zeros = MakeZeros(kShortBlock);
  uint64_t c = crc;
  c = ThreeWay(p, n, c, kLongBlock, long_zeros);
  c = ThreeWay(p, n, c, kShortBlock, short_zeros);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  if (has_sse42) return ~Hardware(p, size, crc);
#endif
  return ~Portable(p, size, crc);
}

}  // namespace quanta
