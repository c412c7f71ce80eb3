// Unit tests for net/spin_budget.h: full budget while spins catch their event, halved on each
// miss, off below the minimum except for periodic full-budget probes, never with max 0.
#include "net/spin_budget.h"

#include <gtest/gtest.h>

namespace quanta::net {
namespace {

using std::chrono::microseconds;

TEST(SpinBudget, StartsFullAndStaysFullWhileSpinsCatchTheirEvent) {
  SpinBudget b(SpinBudget::Options{microseconds(100), microseconds(10), 8});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(b.Next(), microseconds(100));
    b.Report(true, microseconds(30));
  }
  EXPECT_EQ(b.stats().spins, 5u);
  EXPECT_EQ(b.stats().caught, 5u);
  EXPECT_EQ(b.stats().spent, microseconds(150));
}

TEST(SpinBudget, MissesHalveItUntilSpinningStopsThenProbesPeriodically) {
  SpinBudget b(SpinBudget::Options{microseconds(100), microseconds(20), 4});
  EXPECT_EQ(b.Next(), microseconds(100));
  b.Report(false, microseconds(100));
  EXPECT_EQ(b.Next(), microseconds(50));
  b.Report(false, microseconds(50));
  EXPECT_EQ(b.Next(), microseconds(25));
  b.Report(false, microseconds(25));  // 12 us: below the minimum, spinning stops
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(100)) << "every 4th request while stopped is a full-budget probe";
  b.Report(false, microseconds(100));  // the probe missed too: still stopped
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.Next(), microseconds(100));
  b.Report(true, microseconds(40));  // the machine is quiet again: back to the full budget
  EXPECT_EQ(b.Next(), microseconds(100));
  EXPECT_EQ(b.stats().requested, 12u);
  EXPECT_EQ(b.stats().spins, 6u);
  EXPECT_EQ(b.stats().missed, 4u);
  EXPECT_EQ(b.stats().caught, 1u);
}

TEST(SpinBudget, ZeroMaximumNeverSpins) {
  SpinBudget b(SpinBudget::Options{microseconds(0), microseconds(10), 1});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.Next(), microseconds(0));
  EXPECT_EQ(b.stats().spins, 0u);
}

}  // namespace
}  // namespace quanta::net
