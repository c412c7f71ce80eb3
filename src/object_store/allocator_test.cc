// Unit tests for object_store/allocator.h: alignment, bounds, best fit, coalescing, and
// randomised alloc/free sequences checked against a simple model of the live ranges.
#include "object_store/allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace quanta {
namespace {

constexpr uint64_t kA = Allocator::kAlignment;

TEST(Allocator, RoundUp) {
  EXPECT_EQ(Allocator::RoundUp(0), 0u);
  EXPECT_EQ(Allocator::RoundUp(1), kA);
  EXPECT_EQ(Allocator::RoundUp(kA - 1), kA);
  EXPECT_EQ(Allocator::RoundUp(kA), kA);
  EXPECT_EQ(Allocator::RoundUp(kA + 1), 2 * kA);
  EXPECT_EQ(Allocator::RoundUp(1000), 1024u);
}

TEST(Allocator, CapacityIsRoundedDownToAlignment) {
  Allocator a(1000);
  EXPECT_EQ(a.capacity(), 960u);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), 960u);
  EXPECT_FALSE(a.Allocate(961).has_value());
  auto off = a.Allocate(960);
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(*off, 0u);
  EXPECT_EQ(a.used(), 960u);
  EXPECT_EQ(a.largest_free(), 0u);
}

TEST(Allocator, TinyCapacityHoldsNothing) {
  Allocator a(kA - 1);
  EXPECT_EQ(a.capacity(), 0u);
  EXPECT_EQ(a.largest_free(), 0u);
  EXPECT_FALSE(a.Allocate(0).has_value());
  EXPECT_FALSE(a.Allocate(1).has_value());
  Allocator z(0);
  EXPECT_FALSE(z.Allocate(1).has_value());
}

TEST(Allocator, ZeroSizeAllocationsAreDistinctAndTakeOneUnit) {
  Allocator a(16 * kA);
  auto x = a.Allocate(0);
  auto y = a.Allocate(0);
  ASSERT_TRUE(x.has_value());
  ASSERT_TRUE(y.has_value());
  EXPECT_NE(*x, *y);
  EXPECT_EQ(*x % kA, 0u);
  EXPECT_EQ(*y % kA, 0u);
  EXPECT_EQ(a.used(), 2 * kA);
  a.Free(*x);
  a.Free(*y);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), 16 * kA);
}

TEST(Allocator, OffsetsAreAlignedAndUsedCountsRoundedSizes) {
  Allocator a(1 << 20);
  const std::vector<uint64_t> sizes = {1, 63, 64, 65, 100, 127, 128, 4097, 3, 999};
  uint64_t expected_used = 0;
  std::vector<uint64_t> offsets;
  for (uint64_t s : sizes) {
    auto off = a.Allocate(s);
    ASSERT_TRUE(off.has_value()) << s;
    EXPECT_EQ(*off % kA, 0u) << "size " << s;
    expected_used += Allocator::RoundUp(s);
    EXPECT_EQ(a.used(), expected_used);
    offsets.push_back(*off);
  }
  // Distinct, non-overlapping.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 0; i < sizes.size(); ++i) ranges.emplace_back(offsets[i], Allocator::RoundUp(sizes[i]));
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].first + ranges[i - 1].second, ranges[i].first);
  }
}

TEST(Allocator, TooLargeFailsAndLeavesStateUntouched) {
  Allocator a(64 * kA);
  EXPECT_FALSE(a.Allocate(64 * kA + 1).has_value());
  auto x = a.Allocate(10 * kA);
  ASSERT_TRUE(x.has_value());
  EXPECT_FALSE(a.Allocate(54 * kA + 1).has_value());
  EXPECT_EQ(a.used(), 10 * kA);
  auto y = a.Allocate(54 * kA);
  ASSERT_TRUE(y.has_value());
  EXPECT_EQ(a.used(), 64 * kA);
  EXPECT_FALSE(a.Allocate(0).has_value());
  EXPECT_FALSE(a.Allocate(1).has_value());
}

// Sizes within kAlignment of 2^64 must not wrap around to a tiny rounded size.
TEST(Allocator, HugeSizeDoesNotWrapAround) {
  Allocator a(64 * kA);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (uint64_t s : {max, max - 1, max - (kA - 2)}) {
    auto off = a.Allocate(s);
    EXPECT_FALSE(off.has_value()) << "Allocate(" << s << ") returned offset " << *off;
    EXPECT_EQ(a.used(), 0u);
    EXPECT_EQ(a.largest_free(), 64 * kA);
  }
  // Whatever happened above, the full arena must still be allocatable exactly once.
  auto whole = a.Allocate(64 * kA);
  ASSERT_TRUE(whole.has_value());
  EXPECT_FALSE(a.Allocate(1).has_value());
}

TEST(Allocator, FreeOfUnknownOrAlreadyFreedOffsetIsNoOp) {
  Allocator a(8 * kA);
  auto x = a.Allocate(kA);
  auto y = a.Allocate(kA);
  ASSERT_TRUE(x && y);
  a.Free(*x + 1);      // not an allocation start
  a.Free(7 * kA);      // free space
  a.Free(1 << 20);     // beyond capacity
  EXPECT_EQ(a.used(), 2 * kA);
  a.Free(*x);
  a.Free(*x);  // double free must not add the range twice
  EXPECT_EQ(a.used(), kA);
  // Exactly 7 units free: 7 single-unit allocations succeed, the 8th fails.
  std::vector<uint64_t> got;
  for (int i = 0; i < 7; ++i) {
    auto o = a.Allocate(1);
    ASSERT_TRUE(o.has_value()) << i;
    got.push_back(*o);
  }
  EXPECT_FALSE(a.Allocate(1).has_value());
  got.push_back(*y);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(std::unique(got.begin(), got.end()), got.end()) << "an offset was handed out twice";
}

TEST(Allocator, BestFitPicksSmallestSufficientHoleLowestOffsetFirst) {
  // Layout (units of kA): [h3:3][u][h1:1][u][h2:2][u][h1':1][u][rest]
  Allocator a(100 * kA);
  auto h3 = a.Allocate(3 * kA);
  auto s1 = a.Allocate(kA);
  auto h1 = a.Allocate(kA);
  auto s2 = a.Allocate(kA);
  auto h2 = a.Allocate(2 * kA);
  auto s3 = a.Allocate(kA);
  auto h1b = a.Allocate(kA);
  auto s4 = a.Allocate(kA);
  ASSERT_TRUE(h3 && s1 && h1 && s2 && h2 && s3 && h1b && s4);
  a.Free(*h3);
  a.Free(*h1);
  a.Free(*h2);
  a.Free(*h1b);
  EXPECT_EQ(a.largest_free(), (100 - 11) * kA);
  EXPECT_EQ(a.Allocate(kA), h1);         // smallest hole, lowest offset among equals
  EXPECT_EQ(a.Allocate(kA), h1b);        // the other one-unit hole
  EXPECT_EQ(a.Allocate(2 * kA - 5), h2); // the two-unit hole, not the three-unit one
  EXPECT_EQ(a.Allocate(kA), h3);         // now only the 3-unit hole and the tail remain
  EXPECT_EQ(a.Allocate(2 * kA), *h3 + kA);
}

TEST(Allocator, CoalescesWithBothNeighbours) {
  Allocator a(30 * kA);
  auto x = a.Allocate(10 * kA);
  auto y = a.Allocate(10 * kA);
  auto z = a.Allocate(10 * kA);
  ASSERT_TRUE(x && y && z);
  EXPECT_FALSE(a.Allocate(1).has_value());
  a.Free(*x);
  a.Free(*z);
  EXPECT_EQ(a.largest_free(), 10 * kA);
  EXPECT_FALSE(a.Allocate(11 * kA).has_value());
  a.Free(*y);  // merges with both sides
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), 30 * kA);
  EXPECT_EQ(a.Allocate(30 * kA), std::optional<uint64_t>(0));
}

TEST(Allocator, CoalescesWithPreviousOnlyAndNextOnly) {
  Allocator a(40 * kA);
  auto w = a.Allocate(10 * kA);
  auto x = a.Allocate(10 * kA);
  auto y = a.Allocate(10 * kA);
  auto z = a.Allocate(10 * kA);
  ASSERT_TRUE(w && x && y && z);
  a.Free(*w);
  a.Free(*x);  // merges with previous
  EXPECT_EQ(a.largest_free(), 20 * kA);
  a.Free(*z);
  a.Free(*y);  // merges with previous (w+x) and next (z)
  EXPECT_EQ(a.largest_free(), 40 * kA);
  auto b = a.Allocate(5 * kA);
  auto c = a.Allocate(5 * kA);
  ASSERT_TRUE(b && c);
  a.Free(*c);  // merges with the free tail after it
  EXPECT_EQ(a.largest_free(), 35 * kA);
  a.Free(*b);
  EXPECT_EQ(a.largest_free(), 40 * kA);
}

// ---- Randomised checks against a model -----------------------------------------------------

struct Model {
  uint64_t capacity;
  std::map<uint64_t, uint64_t> live;  // offset -> rounded size

  // Free gaps between live ranges, as (offset, size).
  std::vector<std::pair<uint64_t, uint64_t>> Gaps() const {
    std::vector<std::pair<uint64_t, uint64_t>> gaps;
    uint64_t pos = 0;
    for (const auto& [off, size] : live) {
      if (off > pos) gaps.emplace_back(pos, off - pos);
      pos = off + size;
    }
    if (pos < capacity) gaps.emplace_back(pos, capacity - pos);
    return gaps;
  }
  uint64_t Used() const {
    uint64_t u = 0;
    for (const auto& [off, size] : live) u += size;
    return u;
  }
  uint64_t LargestGap() const {
    uint64_t m = 0;
    for (const auto& g : Gaps()) m = std::max(m, g.second);
    return m;
  }
  // Best fit, lowest offset among equal sizes.
  std::optional<uint64_t> BestFit(uint64_t need) const {
    std::optional<std::pair<uint64_t, uint64_t>> best;
    for (const auto& g : Gaps()) {
      if (g.second < need) continue;
      if (!best || g.second < best->second) best = g;
    }
    if (!best) return std::nullopt;
    return best->first;
  }
  // Whether [off, off+size) overlaps a live range.
  bool Overlaps(uint64_t off, uint64_t size) const {
    auto it = live.upper_bound(off);
    if (it != live.end() && it->first < off + size) return true;
    if (it != live.begin()) {
      --it;
      if (it->first + it->second > off) return true;
    }
    return false;
  }
};

void RunRandomSequence(uint32_t seed, uint64_t capacity, int steps) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Allocator a(capacity);
  Model m{a.capacity(), {}};
  std::vector<uint64_t> offsets;
  int failures = 0;
  for (int step = 0; step < steps; ++step) {
    bool do_alloc = offsets.empty() || rng() % 100 < 55;
    if (do_alloc) {
      uint64_t size;
      switch (rng() % 10) {
        case 0: size = 0; break;
        case 1: size = rng() % (capacity / 4 + 1); break;  // occasionally large
        case 2: size = kA * (1 + rng() % 8); break;          // exact multiples
        default: size = 1 + rng() % 3000; break;
      }
      uint64_t need = Allocator::RoundUp(size == 0 ? 1 : size);
      auto expected = m.BestFit(need);
      auto off = a.Allocate(size);
      ASSERT_EQ(off.has_value(), expected.has_value())
          << "step " << step << " size " << size << " largest gap " << m.LargestGap();
      if (!off) {
        ++failures;
        continue;
      }
      EXPECT_EQ(*off, *expected) << "not best fit at step " << step;
      ASSERT_EQ(*off % kA, 0u);
      ASSERT_LE(*off + need, m.capacity) << "allocation beyond capacity at step " << step;
      ASSERT_FALSE(m.Overlaps(*off, need)) << "overlap at step " << step;
      m.live[*off] = need;
      offsets.push_back(*off);
    } else {
      size_t i = rng() % offsets.size();
      a.Free(offsets[i]);
      m.live.erase(offsets[i]);
      offsets[i] = offsets.back();
      offsets.pop_back();
    }
    ASSERT_EQ(a.used(), m.Used()) << "step " << step;
    ASSERT_EQ(a.largest_free(), m.LargestGap()) << "step " << step;
  }
  // Free everything left, in random order; the arena must be whole again.
  std::shuffle(offsets.begin(), offsets.end(), rng);
  for (uint64_t off : offsets) a.Free(off);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), a.capacity());
  EXPECT_EQ(a.Allocate(a.capacity()), std::optional<uint64_t>(0));
  // The sequence should have exercised the "does not fit" path too.
  EXPECT_GT(failures, 0);
}

TEST(Allocator, RandomisedSequencesMatchModel) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    RunRandomSequence(seed, 64 * 1024, 3000);
    if (HasFatalFailure()) return;
  }
}

TEST(Allocator, RandomisedSequencesOddCapacity) {
  for (uint32_t seed = 100; seed < 105; ++seed) {
    RunRandomSequence(seed, 50'000 + seed, 2000);  // not a multiple of the alignment
    if (HasFatalFailure()) return;
  }
}

TEST(Allocator, FreeingEverythingInRandomOrderRestoresFullCapacity) {
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    Allocator a(256 * 1024);
    std::vector<uint64_t> offsets;
    // Fill the arena completely with random sizes.
    while (a.used() < a.capacity()) {
      uint64_t size = 1 + rng() % 5000;
      auto off = a.Allocate(size);
      if (!off) off = a.Allocate(a.largest_free());
      ASSERT_TRUE(off.has_value());
      offsets.push_back(*off);
    }
    EXPECT_FALSE(a.Allocate(1).has_value());
    EXPECT_EQ(a.largest_free(), 0u);
    std::shuffle(offsets.begin(), offsets.end(), rng);
    for (size_t i = 0; i < offsets.size(); ++i) {
      a.Free(offsets[i]);
      // A full-capacity request must fail until the very last range is returned.
      if (i + 1 < offsets.size()) {
        ASSERT_LT(a.largest_free(), a.capacity());
      }
    }
    EXPECT_EQ(a.used(), 0u);
    EXPECT_EQ(a.largest_free(), a.capacity());
    auto whole = a.Allocate(a.capacity());
    ASSERT_TRUE(whole.has_value());
    EXPECT_EQ(*whole, 0u);
  }
}

}  // namespace
}  // namespace quanta
