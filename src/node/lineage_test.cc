// Unit tests for node/lineage.h: an entry lives while a return of its task is referenced, or
// while a kept entry names one of its returns as an argument (so a freed argument can be made
// again), goes with the last of both (transitively), and the byte budget evicts the oldest.
#include "node/lineage.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

constexpr uint64_t kOwner = (1ull << 32) | 1;

protocol::TaskSpec Spec(uint32_t seq, std::vector<ObjectID> args = {}) {
  protocol::TaskSpec spec;
  spec.task_id = ObjectID::Make(kOwner, seq, 0);
  spec.num_returns = 1;
  spec.name = "t" + std::to_string(seq);
  spec.arg_refs = std::move(args);
  return spec;
}

TEST(Lineage, AnEntryGoesWithItsLastReturn) {
  Lineage l(1 << 20);
  auto a = Spec(1);
  a.num_returns = 2;
  l.Record(a, 3, 2);
  l.OnFreed({a.ReturnId(0)});
  ASSERT_NE(l.Find(a.task_id), nullptr) << "one return is still referenced";
  EXPECT_EQ(l.Find(a.task_id)->retries_left, 3);
  l.OnFreed({a.ReturnId(1)});
  EXPECT_EQ(l.Find(a.task_id), nullptr);
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.bytes(), 0u);
}

TEST(Lineage, AFreedArgumentIsKeptWhileATaskUsingItIsKept) {
  Lineage l(1 << 20);
  auto a = Spec(1), b = Spec(2);
  auto c = Spec(3, {a.ReturnId(0), b.ReturnId(0)});
  l.Record(a, -1, 1);
  l.Record(b, -1, 1);
  l.Record(c, -1, 1);
  l.OnFreed({a.ReturnId(0), b.ReturnId(0)});  // the driver dropped a and b; c is still held
  ASSERT_NE(l.Find(a.task_id), nullptr) << "c may be rebuilt, and needs a made again";
  ASSERT_NE(l.Find(b.task_id), nullptr);
  EXPECT_EQ(l.Find(a.task_id)->dependents, 1u);
  l.OnFreed({c.ReturnId(0)});  // c goes, and with it what only it needed
  EXPECT_EQ(l.Find(c.task_id), nullptr);
  EXPECT_EQ(l.Find(a.task_id), nullptr);
  EXPECT_EQ(l.Find(b.task_id), nullptr);
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.bytes(), 0u);
}

TEST(Lineage, AChainGoesTransitivelyAndAReferencedArgumentStays) {
  Lineage l(1 << 20);
  auto a = Spec(1), b = Spec(2, {a.ReturnId(0)}), c = Spec(3, {b.ReturnId(0)});
  l.Record(a, -1, 1);
  l.Record(b, -1, 1);
  l.Record(c, -1, 1);
  l.OnFreed({b.ReturnId(0)});
  ASSERT_NE(l.Find(b.task_id), nullptr);
  l.OnFreed({c.ReturnId(0)});
  EXPECT_EQ(l.Find(c.task_id), nullptr);
  EXPECT_EQ(l.Find(b.task_id), nullptr) << "freed, and nothing kept needs it any more";
  ASSERT_NE(l.Find(a.task_id), nullptr) << "its return is still referenced";
  EXPECT_EQ(l.Find(a.task_id)->dependents, 0u);
  l.OnFreed({a.ReturnId(0)});
  EXPECT_EQ(l.size(), 0u);
}

TEST(Lineage, ARebuildRefreshesAnEntryWithoutCountingItsArgumentsTwice) {
  Lineage l(1 << 20);
  auto a = Spec(1), c = Spec(2, {a.ReturnId(0), a.ReturnId(0)});  // a named twice
  l.Record(a, -1, 1);
  l.Record(c, 2, 1);
  EXPECT_EQ(l.Find(a.task_id)->dependents, 2u);
  l.Record(c, 1, 1);  // c ran again (a rebuild): one retry fewer, same arguments
  EXPECT_EQ(l.Find(a.task_id)->dependents, 2u);
  EXPECT_EQ(l.Find(c.task_id)->retries_left, 1);
  l.OnFreed({a.ReturnId(0)});
  l.Record(a, -1, 1);  // a made again for c's rebuild, then freed again
  l.OnFreed({a.ReturnId(0)});
  ASSERT_NE(l.Find(a.task_id), nullptr);
  l.OnFreed({c.ReturnId(0)});
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.bytes(), 0u);
}

TEST(Lineage, TheBudgetEvictsTheOldestAndItsUnneededArguments) {
  auto a = Spec(1), b = Spec(2, {a.ReturnId(0)}), d = Spec(3);
  Lineage probe(1 << 20);
  probe.Record(a, -1, 1);
  size_t one = probe.bytes();
  Lineage l(3 * one);  // room for about three small entries
  l.Record(a, -1, 1);
  l.Record(b, -1, 1);
  l.OnFreed({a.ReturnId(0)});  // a is kept for b only
  ASSERT_NE(l.Find(a.task_id), nullptr);
  for (uint32_t seq = 10; seq < 14; ++seq) l.Record(Spec(seq), -1, 1);
  l.Record(d, -1, 1);
  EXPECT_LE(l.bytes(), 3 * one);
  EXPECT_EQ(l.Find(a.task_id), nullptr);
  EXPECT_TRUE(l.WasEvicted(a.task_id));
  EXPECT_EQ(l.Find(b.task_id), nullptr);
  EXPECT_NE(l.Find(d.task_id), nullptr) << "the newest stays";
}

}  // namespace
}  // namespace quanta
