// Unit tests for net/reply_watch.h: spin while one or a few answers are awaited, not for a
// batch, not once they are answered, and not for answers overdue beyond max_age.
#include "net/reply_watch.h"

#include <gtest/gtest.h>

namespace quanta::net {
namespace {

using std::chrono::microseconds;
using Clock = ReplyWatch::Clock;

TEST(ReplyWatch, SpinsWhileALoneAnswerIsAwaitedAndStopsWhenItComes) {
  ReplyWatch w(ReplyWatch::Options{microseconds(2000), 2});
  auto t = Clock::now();
  EXPECT_FALSE(w.ShouldSpin(t));
  w.Sent(7, t);
  EXPECT_TRUE(w.ShouldSpin(t + microseconds(10)));
  w.Answered(7);
  EXPECT_FALSE(w.ShouldSpin(t + microseconds(20)));
  EXPECT_TRUE(w.empty());
}

TEST(ReplyWatch, ABatchOfOutstandingRequestsDoesNotSpin) {
  ReplyWatch w(ReplyWatch::Options{microseconds(2000), 2});
  auto t = Clock::now();
  for (uint64_t k = 1; k <= 10; ++k) w.Sent(k, t);
  EXPECT_FALSE(w.ShouldSpin(t)) << "10 awaited answers are a batch";
  for (uint64_t k = 1; k <= 8; ++k) w.Answered(k);
  EXPECT_TRUE(w.ShouldSpin(t)) << "the batch's last two";
  EXPECT_EQ(w.outstanding(t), 2u);
}

TEST(ReplyWatch, AnswersOverdueBeyondMaxAgeAreForgotten) {
  ReplyWatch w(ReplyWatch::Options{microseconds(1000), 2});
  auto t = Clock::now();
  w.Sent(1, t);
  EXPECT_TRUE(w.ShouldSpin(t + microseconds(900)));
  EXPECT_FALSE(w.ShouldSpin(t + microseconds(1100))) << "a lost answer must not make the loop spin for ever";
  EXPECT_TRUE(w.empty());
  w.Answered(1);  // a late answer is harmless
  EXPECT_TRUE(w.empty());
}

TEST(ReplyWatch, ARequestSentAgainIsTimedFromItsLatestSend) {
  ReplyWatch w(ReplyWatch::Options{microseconds(1000), 2});
  auto t = Clock::now();
  w.Sent(1, t);
  w.Sent(1, t + microseconds(800));  // a retry of the same call
  EXPECT_TRUE(w.ShouldSpin(t + microseconds(1500)));
  EXPECT_FALSE(w.ShouldSpin(t + microseconds(1900)));
}

}  // namespace
}  // namespace quanta::net
