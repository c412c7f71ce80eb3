// Unit tests for node/pull_manager.h on real nodes in one process (test_nodes.h): bytes pulled
// over real data channels into the store and sealed as a secondary copy the owner hears of,
// one pull per object, another location tried when one has no copy or dies, failure when none
// is left, the size the store can hold (in-flight pulls reserve their space; more waits; an
// object larger than the store is refused), and the serving side's pins.
#include "node/pull_manager.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "node/test_nodes.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;
using testing::TestCluster;
using testing::TestNode;

constexpr uint64_t kMiB = 1ull << 20;

struct Outcome {
  bool done = false;
  Status status;
};

PullManager::Done Record(Outcome* o) {
  return [o](const Status& st) {
    EXPECT_FALSE(o->done) << "a pull's waiter is answered once";
    o->done = true;
    o->status = st;
  };
}

int64_t PinsOf(SharedStore* store, const ObjectID& id) {
  for (const auto& info : store->List()) {
    if (info.id == id) return info.pins;
  }
  return -1;
}

TEST(PullManager, PullsTheBytesAndTellsTheOwner) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &reader = c.node(2);
  const uint64_t size = 5 * kMiB + 7;  // two chunks, the last one short
  ObjectID id = owner.PutStored(1, size, 9);
  Outcome o;
  reader.pulls->EnsureLocal(id, size, {1}, Record(&o));
  EXPECT_TRUE(reader.pulls->InProgress(id));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_FALSE(reader.pulls->InProgress(id));
  EXPECT_TRUE(reader.HasBytes(id, size, 9));
  EXPECT_TRUE(reader.objects->store()->IsSecondary(id)) << "a pulled copy may be evicted";
  ASSERT_TRUE(c.RunUntil([&] { return owner.directory->LocationsOf(id) == std::vector<uint32_t>{2}; }))
      << "the owner learns where the new copy is";
  const auto& st = reader.pulls->stats();
  EXPECT_EQ(st.pulls_started, 1u);
  EXPECT_EQ(st.pulls_done, 1u);
  EXPECT_EQ(st.bytes_pulled, size);
  EXPECT_EQ(st.retries, 0u);
  ASSERT_TRUE(c.RunUntil([&] { return PinsOf(owner.objects->store(), id) == 0; }))
      << "the holder unpins its copy once it has been sent";
  EXPECT_EQ(owner.pulls->stats().sends, 1u);
  EXPECT_EQ(owner.pulls->stats().bytes_served, size);
}

TEST(PullManager, OnePullPerObjectHoweverManyWait) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &reader = c.node(2);
  ObjectID id = owner.PutStored(1, kMiB, 1);
  Outcome a, b, d;
  reader.pulls->EnsureLocal(id, kMiB, {1}, Record(&a));
  reader.pulls->EnsureLocal(id, kMiB, {1}, Record(&b));
  reader.pulls->EnsureLocal(id, kMiB, {}, Record(&d));
  ASSERT_TRUE(c.RunUntil([&] { return a.done && b.done && d.done; }));
  EXPECT_TRUE(a.status.ok() && b.status.ok() && d.status.ok());
  EXPECT_EQ(reader.pulls->stats().pulls_started, 1u);
  EXPECT_EQ(owner.Count(MessageType::kPullObject), 1u);
  // Once here, asking again answers at once, without the loop.
  Outcome again;
  reader.pulls->EnsureLocal(id, kMiB, {1}, Record(&again));
  EXPECT_TRUE(again.done);
  EXPECT_TRUE(again.status.ok());
}

TEST(PullManager, ANodeWithoutAStoreCannotPull) {
  TestCluster c(std::vector<uint64_t>{64 * kMiB, 0});
  ObjectID id = c.node(1).PutStored(1, kMiB, 1);
  Outcome o;
  c.node(2).pulls->EnsureLocal(id, kMiB, {1}, Record(&o));
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
}

TEST(PullManager, ALocationWithoutTheCopyIsReplacedByTheNext) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &reader = c.node(2), &empty = c.node(3);
  ObjectID id = owner.PutStored(1, 2 * kMiB, 4);
  Outcome o;
  reader.pulls->EnsureLocal(id, 2 * kMiB, {3, 1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(empty.Count(MessageType::kPullObject), 1u) << "asked first, had nothing";
  EXPECT_EQ(reader.Count(MessageType::kPullFailed), 1u);
  EXPECT_EQ(reader.pulls->stats().retries, 1u);
  EXPECT_TRUE(reader.HasBytes(id, 2 * kMiB, 4));
}

TEST(PullManager, WithNoCopyLeftTheReadersGetTheLastReason) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &reader = c.node(2);
  ObjectID id = ObjectID::Make(owner.Client(), 1, ObjectID::kPutIndex);  // nobody has it
  Outcome o;
  reader.pulls->EnsureLocal(id, kMiB, {3, 1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }));
  EXPECT_EQ(o.status.code(), StatusCode::kNotFound);
  EXPECT_NE(o.status.message().find("no node holds a copy"), std::string::npos) << o.status.message();
  EXPECT_NE(o.status.message().find("no copy of the object here"), std::string::npos) << o.status.message();
  EXPECT_EQ(reader.pulls->stats().pulls_failed, 1u);
  EXPECT_FALSE(reader.objects->store()->Contains(id)) << "the space reserved for it is given back";
}

TEST(PullManager, ASizeMismatchIsRefusedByTheHolder) {
  TestCluster c(2);
  ObjectID id = c.node(1).PutStored(1, kMiB, 1);
  Outcome o;
  c.node(2).pulls->EnsureLocal(id, kMiB + 1, {1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }));
  EXPECT_FALSE(o.status.ok());
  EXPECT_NE(o.status.message().find("size mismatch"), std::string::npos) << o.status.message();
}

TEST(PullManager, DeadAndOwnLocationsAreSkipped) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &reader = c.node(2);
  ObjectID id = owner.PutStored(1, kMiB, 2);
  c.Kill(3);
  Outcome o;
  reader.pulls->EnsureLocal(id, kMiB, {3, 2, 1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(reader.pulls->stats().retries, 0u) << "neither the dead node nor itself was asked";
}

TEST(PullManager, ALocationThatDiesMidPullIsReplaced) {
  TestCluster c(3);
  TestNode &silent = c.node(1), &reader = c.node(2), &other = c.node(3);
  const uint64_t size = 3 * kMiB;
  ObjectID id = ObjectID::Make((1ull << 32) | 5, 1, ObjectID::kPutIndex);
  silent.PlaceCopy(id, size, 6);
  other.PlaceCopy(id, size, 6);
  silent.drop = [](uint32_t, MessageType t) { return t == MessageType::kPullObject; };  // never answers
  Outcome o;
  reader.pulls->EnsureLocal(id, size, {1, 3}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return silent.Count(MessageType::kPullObject) == 1; }));
  c.RunFor(50ms);
  EXPECT_FALSE(o.done);
  c.Kill(1, "unplugged");
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }, 5s)) << "the pull must move on when its source dies";
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_TRUE(reader.HasBytes(id, size, 6));
  EXPECT_EQ(other.Count(MessageType::kPullObject), 1u);
  EXPECT_EQ(reader.pulls->stats().retries, 1u);
}

TEST(PullManager, NoCopyIsReportedLostBeforeTheDeathOfItsBrokenSourceIsKnown) {
  // The only holder crashes mid-transfer (its channel closes) a moment before the cluster
  // declares it dead. Failing the pull at once would report the object lost while its owner
  // still lists that copy, so the owner would not rebuild it (found by tests/test_chaos.py).
  // The pull waits for the verdict, then fails with the death as its reason.
  TestCluster c(2, 512 * kMiB);
  TestNode &holder = c.node(1), &reader = c.node(2);
  const uint64_t size = 384 * kMiB;  // long enough on loopback to be cut off mid-way
  ObjectID id = ObjectID::Make((1ull << 32) | 5, 1, ObjectID::kPutIndex);
  holder.PlaceCopy(id, size, 3);
  Outcome o;
  reader.pulls->EnsureLocal(id, size, {1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return reader.transfer->stats().bytes_received > 0; }));
  ASSERT_FALSE(o.done) << "the whole object came through before the crash: make it larger";
  c.Crash(1);
  c.RunFor(600ms);
  EXPECT_FALSE(o.done) << "the holder still counts as alive: the pull must not give up yet ("
                       << o.status.ToString() << ")";
  EXPECT_GE(reader.pulls->stats().retries, 1u) << "its channel broke";
  c.DeclareDead(1, "crashed");
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }, 5s));
  EXPECT_EQ(o.status.code(), StatusCode::kNotFound) << o.status.ToString();
  EXPECT_FALSE(reader.objects->store()->Contains(id)) << "the space reserved for it is given back";
}

TEST(PullManager, InFlightPullsReserveTheirSpaceAndAnotherWaitsForRoom) {
  // The reader's store holds 8 MiB. A 5 MiB pull in flight (from a node that does not answer)
  // holds 5 MiB of it, so a second 5 MiB pull waits instead of overcommitting the store;
  // once the first fails and gives its space back, the second goes ahead.
  TestCluster c(std::vector<uint64_t>{64 * kMiB, 8 * kMiB, 64 * kMiB});
  TestNode &owner = c.node(1), &reader = c.node(2), &silent = c.node(3);
  ObjectID first = ObjectID::Make((3ull << 32) | 5, 1, ObjectID::kPutIndex);
  silent.PlaceCopy(first, 5 * kMiB, 1);
  silent.drop = [](uint32_t, MessageType t) { return t == MessageType::kPullObject; };
  ObjectID second = owner.PutStored(2, 5 * kMiB, 2);
  Outcome o1, o2;
  reader.pulls->EnsureLocal(first, 5 * kMiB, {3}, Record(&o1));
  reader.pulls->EnsureLocal(second, 5 * kMiB, {1}, Record(&o2));
  ASSERT_TRUE(c.RunUntil([&] { return silent.Count(MessageType::kPullObject) == 1; }));
  c.RunFor(400ms);
  EXPECT_FALSE(o2.done) << "there is no room for it while the first pull holds its space";
  EXPECT_EQ(owner.Count(MessageType::kPullObject), 0u) << "not even requested";
  EXPECT_LE(reader.objects->store()->Stats().used, 8 * kMiB);
  c.Kill(3);
  ASSERT_TRUE(c.RunUntil([&] { return o1.done && o2.done; }));
  EXPECT_FALSE(o1.status.ok());
  ASSERT_TRUE(o2.status.ok()) << o2.status.ToString();
  EXPECT_TRUE(reader.HasBytes(second, 5 * kMiB, 2));
}

TEST(PullManager, ASealedPulledCopyMakesRoomForTheNext) {
  // Secondary copies are evicted for a new pull: pulled one after another, two 5 MiB objects
  // pass through an 8 MiB store, and the owner hears that the first copy went.
  TestCluster c(std::vector<uint64_t>{64 * kMiB, 8 * kMiB});
  TestNode &owner = c.node(1), &reader = c.node(2);
  ObjectID a = owner.PutStored(1, 5 * kMiB, 1), b = owner.PutStored(2, 5 * kMiB, 2);
  Outcome oa, ob;
  reader.pulls->EnsureLocal(a, 5 * kMiB, {1}, Record(&oa));
  reader.pulls->EnsureLocal(b, 5 * kMiB, {1}, Record(&ob));
  ASSERT_TRUE(c.RunUntil([&] { return oa.done && ob.done; }));
  ASSERT_TRUE(oa.status.ok()) << oa.status.ToString();
  ASSERT_TRUE(ob.status.ok()) << ob.status.ToString();
  EXPECT_TRUE(reader.HasBytes(b, 5 * kMiB, 2));
  EXPECT_FALSE(reader.objects->store()->Contains(a)) << "evicted to make room";
  EXPECT_EQ(reader.objects->store()->Stats().total_evicted, 1u);
  ASSERT_TRUE(c.RunUntil([&] { return owner.directory->LocationsOf(b) == std::vector<uint32_t>{2}; }));
  ASSERT_TRUE(c.RunUntil([&] { return owner.directory->LocationsOf(a).empty(); }))
      << "the owner is told the evicted copy is gone";
}

TEST(PullManager, AnObjectLargerThanTheStoreIsRefusedAtOnce) {
  TestCluster c(std::vector<uint64_t>{64 * kMiB, 8 * kMiB});
  ObjectID id = c.node(1).PutStored(1, 16 * kMiB, 3);
  Outcome o;
  c.node(2).pulls->EnsureLocal(id, 16 * kMiB, {1}, Record(&o));
  ASSERT_TRUE(c.RunUntil([&] { return o.done; }, 2s)) << "no amount of waiting makes 16 MiB fit in 8";
  EXPECT_EQ(o.status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(o.status.message().find("larger than the whole object store"), std::string::npos) << o.status.message();
  EXPECT_EQ(c.node(1).Count(MessageType::kPullObject), 0u);
}

}  // namespace
}  // namespace quanta
