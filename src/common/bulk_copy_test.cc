// Unit tests for common/bulk_copy.h: every size and alignment copies exactly, and nothing
// around the destination is touched.
#include "common/bulk_copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace quanta {
namespace {

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

TEST(BulkCopy, CopiesEverySizeAndAlignmentExactly) {
  const size_t sizes[] = {0, 1, 63, 64, 65, 4096, kStreamingThreshold - 1, kStreamingThreshold,
                          kStreamingThreshold + 17, 3 * kStreamingThreshold + 63};
  for (size_t size : sizes) {
    for (size_t dst_shift : {0, 1, 15, 16, 33, 63}) {
      for (size_t src_shift : {0, 7, 64}) {
        auto src = Pattern(size + src_shift, static_cast<uint32_t>(size + dst_shift));
        std::vector<uint8_t> dst(size + dst_shift + 128, 0xEE);
        BulkCopy(dst.data() + 64 + dst_shift, src.data() + src_shift, size);
        for (size_t i = 0; i < 64 + dst_shift; ++i) ASSERT_EQ(dst[i], 0xEE) << "wrote before the destination";
        ASSERT_TRUE(std::equal(src.begin() + src_shift, src.end(), dst.begin() + 64 + dst_shift))
            << "size " << size << " dst shift " << dst_shift << " src shift " << src_shift;
        for (size_t i = 64 + dst_shift + size; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xEE) << "wrote past the end";
      }
    }
  }
}

}  // namespace
}  // namespace quanta
