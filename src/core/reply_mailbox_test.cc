#include "core/reply_mailbox.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

TEST(ReplyMailboxTest, AReplyIsKeptForItsRequestUntilTaken) {
  ReplyMailbox box;
  uint64_t id = box.Open();
  EXPECT_FALSE(box.Take<protocol::NodeStats>(id).has_value());  // not here yet
  protocol::NodeStats stats;
  stats.request_id = id;
  stats.counters.emplace_back("workers", 3);
  EXPECT_TRUE(box.Deliver(id, stats));
  auto got = box.Take<protocol::NodeStats>(id);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok());
  EXPECT_EQ(got->value().counters.at(0).second, 3);
  EXPECT_EQ(box.open(), 0u);
}

TEST(ReplyMailboxTest, LateUnsolicitedAndRepeatedRepliesAreDropped) {
  ReplyMailbox box;
  EXPECT_FALSE(box.Deliver(12345, protocol::ClusterInfo{}));  // never asked
  uint64_t id = box.Open();
  box.Abandon(id);  // the caller timed out
  EXPECT_FALSE(box.Deliver(id, protocol::ClusterInfo{}));
  uint64_t again = box.Open();
  EXPECT_TRUE(box.Deliver(again, protocol::ClusterInfo{}));
  EXPECT_FALSE(box.Deliver(again, protocol::ClusterInfo{}));  // a second answer to one request
  EXPECT_EQ(box.open(), 1u);
  for (int i = 0; i < 1000; ++i) box.Deliver(again + 1 + i, protocol::NodeStats{});
  EXPECT_EQ(box.open(), 1u);  // nothing piles up
}

TEST(ReplyMailboxTest, AReplyOfAnotherKindIsAnErrorForThatRequest) {
  ReplyMailbox box;
  uint64_t id = box.Open();
  EXPECT_TRUE(box.Deliver(id, protocol::StoreStatsReply{}));
  auto got = box.Take<protocol::ClusterInfo>(id);
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->ok());
  EXPECT_EQ(box.open(), 0u);
  EXPECT_NE(box.Open(), id);  // ids are never reused
}

}  // namespace
}  // namespace quanta
