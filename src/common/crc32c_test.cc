// Unit tests for common/crc32c.h: published check values (including the RFC 3720 test
// vectors), every length 0..300 and every start alignment against a bitwise reference written
// here from the polynomial's definition, and streaming in pieces equal to one shot.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace quanta {
namespace {

// Bit at a time from the definition: reflected CRC-32C (polynomial 0x1EDC6F41, reflected
// 0x82F63B78), initial value and final XOR 0xFFFFFFFF. Independent of the table and of SSE4.2.
uint32_t Reference(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

TEST(Crc32c, EmptyInputIsZero) {
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  // Continuing with nothing keeps the running value.
  EXPECT_EQ(Crc32c(nullptr, 0, 0xE3069283u), 0xE3069283u);
}

TEST(Crc32c, StandardCheckValue) {
  // The catalogue check value of CRC-32C: the CRC of the ASCII digits "123456789".
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("a", 1), 0xC1D04330u);
}

// RFC 3720 (iSCSI), appendix B.4: 32-byte test vectors.
TEST(Crc32c, Rfc3720Vectors) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), dec.size()), 0x113FDB5Cu);
}

TEST(Crc32c, Rfc3720IscsiReadCommandPdu) {
  // The 48-byte iSCSI Read (10) command PDU of RFC 3720 B.4.
  const uint8_t pdu[48] = {0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                           0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                           0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                           0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Crc32c(pdu, sizeof pdu), 0xD9963A56u);
}

TEST(Crc32c, EveryLengthUpTo300MatchesBitwiseReference) {
  std::vector<uint8_t> data = Pattern(300, 7);
  for (size_t n = 0; n <= data.size(); ++n) {
    ASSERT_EQ(Crc32c(data.data(), n), Reference(data.data(), n)) << "length " << n;
  }
}

TEST(Crc32c, UnalignedStartsMatchReference) {
  // The hardware path reads 8 bytes at a time: every start offset within a word, every tail.
  std::vector<uint8_t> buf = Pattern(300 + 16, 11);
  for (size_t start = 0; start < 16; ++start) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{15}, size_t{16},
                     size_t{17}, size_t{63}, size_t{64}, size_t{65}, size_t{255}, size_t{300}}) {
      ASSERT_EQ(Crc32c(buf.data() + start, n), Reference(buf.data() + start, n))
          << "start " << start << " length " << n;
    }
  }
}

TEST(Crc32c, StreamingInPiecesEqualsOneShot) {
  std::vector<uint8_t> data = Pattern(10000, 3);
  const uint32_t whole = Crc32c(data.data(), data.size());
  ASSERT_EQ(whole, Reference(data.data(), data.size()));
  for (size_t piece : {size_t{1}, size_t{3}, size_t{7}, size_t{8}, size_t{13}, size_t{64}, size_t{4096}, size_t{9999}}) {
    uint32_t crc = 0;
    for (size_t off = 0; off < data.size(); off += piece) {
      crc = Crc32c(data.data() + off, std::min(piece, data.size() - off), crc);
    }
    EXPECT_EQ(crc, whole) << "pieces of " << piece;
  }
  // A split at every point of a short message.
  const char* msg = "The quick brown fox jumps over the lazy dog";
  size_t len = std::strlen(msg);
  uint32_t one = Crc32c(msg, len);
  for (size_t cut = 0; cut <= len; ++cut) {
    EXPECT_EQ(Crc32c(msg + cut, len - cut, Crc32c(msg, cut)), one) << "cut at " << cut;
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  // An integrity check: no single-bit corruption of a chunk may go unnoticed.
  std::vector<uint8_t> data = Pattern(257, 5);
  const uint32_t good = Crc32c(data.data(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      data[i] ^= static_cast<uint8_t>(1u << bit);
      ASSERT_NE(Crc32c(data.data(), data.size()), good) << "byte " << i << " bit " << bit;
      data[i] ^= static_cast<uint8_t>(1u << bit);
    }
  }
  // A truncated or extended range differs too.
  EXPECT_NE(Crc32c(data.data(), data.size() - 1), good);
  std::vector<uint8_t> longer = data;
  longer.push_back(0);
  EXPECT_NE(Crc32c(longer.data(), longer.size()), good);
}

TEST(Crc32c, LengthsAroundTheInterleavedBlocksMatchReference) {
  // 3 x 256 and 3 x 8192 bytes are where the three-stream paths start; 4 MiB is a chunk.
  std::vector<uint8_t> data = Pattern((4u << 20) + 3 * 8192 + 17, 11);
  for (size_t n : {767u, 768u, 769u, 1543u, 24575u, 24576u, 24577u, 24576u + 768u + 9u, 49152u + 7u, 1u << 20,
                   (4u << 20) + 3}) {
    for (size_t offset : {0u, 1u, 5u}) {
      EXPECT_EQ(Crc32c(data.data() + offset, n), Reference(data.data() + offset, n)) << n << " at " << offset;
    }
  }
  // Streaming across the block boundaries equals one shot.
  uint32_t crc = Crc32c(data.data(), 24577);
  crc = Crc32c(data.data() + 24577, 1000, crc);
  EXPECT_EQ(crc, Crc32c(data.data(), 25577));
}

TEST(Crc32c, LargeBufferMatchesReference) {
  std::vector<uint8_t> data = Pattern((1u << 20) + 5, 9);
  EXPECT_EQ(Crc32c(data.data(), data.size()), Reference(data.data(), data.size()));
}

}  // namespace
}  // namespace quanta
