// Unit tests for node/object_directory.h on real nodes in one process (test_nodes.h: real
// stores, peer channels over loopback TCP, one event loop): borrow registration and release
// keep the owner's counts right, values and locations reach borrowers, the release barrier
// waits for acknowledgements (but not for a dead owner), and node deaths and unknown ids
// end borrows with the right errors.
#include "node/object_directory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "node/test_nodes.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;
using protocol::ObjectKind;
using testing::TestCluster;
using testing::TestNode;

bool Contains(const std::vector<ObjectID>& v, const ObjectID& id) { return std::find(v.begin(), v.end(), id) != v.end(); }

TEST(ObjectDirectory, ABorrowKeepsTheOwnersObjectAliveUntilReleased) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID id = owner.PutInline(1, "hello");
  borrower.Refs(id, +1);
  ASSERT_TRUE(c.RunUntil([&] { return borrower.Count(MessageType::kBorrowAck) == 1; }));
  EXPECT_EQ(owner.Count(MessageType::kAddBorrower), 1u);
  EXPECT_EQ(borrower.directory->pending_registrations(), 0u);
  ASSERT_NE(borrower.objects->Find(id), nullptr);
  EXPECT_TRUE(borrower.objects->Find(id)->borrowed);

  owner.Refs(id, -1);  // the owner's own client lets go
  c.RunFor(50ms);
  EXPECT_FALSE(Contains(owner.freed, id)) << "node 2 still borrows it";
  ASSERT_NE(owner.objects->Find(id), nullptr);

  borrower.Refs(id, -1);
  ASSERT_TRUE(c.RunUntil([&] { return Contains(owner.freed, id); }));
  EXPECT_EQ(owner.objects->Find(id), nullptr);
  EXPECT_EQ(borrower.objects->Find(id), nullptr);
  EXPECT_EQ(borrower.directory->stats().borrows_registered, 1u);
  EXPECT_EQ(borrower.directory->stats().borrows_released, 1u);
}

TEST(ObjectDirectory, CrossingAddAndRemoveAreCountedPerMessage) {
  // Borrow, drop, borrow again in one go: the owner sees Add, Add, then the Remove (held back
  // until the first Add is acknowledged) — one borrow must remain.
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID id = owner.PutInline(1, "x");
  borrower.Refs(id, +1);
  borrower.directory->Flush();  // the first AddBorrower leaves
  borrower.Refs(id, -1);        // its RemoveBorrower waits for the first ack
  borrower.Refs(id, +1);
  borrower.directory->Flush();  // the second AddBorrower leaves
  ASSERT_TRUE(c.RunUntil([&] { return owner.Count(MessageType::kRemoveBorrower) == 1; }));
  EXPECT_EQ(owner.Count(MessageType::kAddBorrower), 2u);
  owner.Refs(id, -1);
  c.RunFor(50ms);
  EXPECT_FALSE(Contains(owner.freed, id)) << "the second borrow still holds it";
  borrower.Refs(id, -1);
  ASSERT_TRUE(c.RunUntil([&] { return Contains(owner.freed, id); }));
}

TEST(ObjectDirectory, TheBorrowersValueComesFromTheOwnerOnce) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID id = owner.PutInline(1, "the value");
  borrower.Refs(id, +1);
  borrower.objects->RequestValue(id);
  borrower.objects->RequestValue(id);  // a second reader: no second subscription
  ASSERT_TRUE(c.RunUntil([&] { return borrower.objects->IsSealed(id); }));
  EXPECT_EQ(borrower.objects->Find(id)->value.data, "the value");
  EXPECT_EQ(borrower.directory->stats().subscriptions, 1u);
  EXPECT_EQ(owner.Count(MessageType::kSubscribeObject), 1u);
}

TEST(ObjectDirectory, ASubscriptionBeforeTheValueIsAnsweredWhenItIsSealed) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID task = ObjectID::Make(owner.Client(), 7, 0);
  ObjectID ret = task.ReturnId(0);
  owner.objects->AddReturnHolder(owner.Client(), ret);  // a task's return, not computed yet
  borrower.Refs(ret, +1);
  borrower.objects->RequestValue(ret);
  ASSERT_TRUE(c.RunUntil([&] { return owner.Count(MessageType::kSubscribeObject) == 1; }));
  c.RunFor(50ms);
  EXPECT_FALSE(borrower.objects->IsSealed(ret));
  protocol::ObjectValue v;
  v.data = "computed";
  owner.objects->Seal(ret, v);
  ASSERT_TRUE(c.RunUntil([&] { return borrower.objects->IsSealed(ret); }));
  EXPECT_EQ(borrower.objects->Find(ret)->value.data, "computed");
}

TEST(ObjectDirectory, AnIdItsOwnerNeverHadIsLost) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID never = ObjectID::Make(owner.Client(), 99, ObjectID::kPutIndex);
  borrower.Refs(never, +1);
  ASSERT_TRUE(c.RunUntil([&] { return borrower.objects->IsSealed(never); }));
  const auto& v = borrower.objects->Find(never)->value;
  EXPECT_EQ(v.kind, ObjectKind::kObjectLost);
  EXPECT_NE(v.data.find("does not exist"), std::string::npos) << v.data;
  EXPECT_EQ(borrower.directory->pending_registrations(), 0u);
}

TEST(ObjectDirectory, RefsToADeadOrUnknownOwnerFailAtOnce) {
  TestCluster c(3);
  c.Kill(3, "its host was unplugged");
  TestNode& n = c.node(2);
  ObjectID of_dead = ObjectID::Make((3ull << 32) | 5, 1, ObjectID::kPutIndex);
  ObjectID of_nobody = ObjectID::Make((9ull << 32) | 5, 1, ObjectID::kPutIndex);
  n.Refs(of_dead, +1);
  n.Refs(of_nobody, +1);
  ASSERT_TRUE(c.RunUntil([&] { return n.objects->IsSealed(of_dead) && n.objects->IsSealed(of_nobody); }));
  EXPECT_EQ(n.objects->Find(of_dead)->value.kind, ObjectKind::kOwnerDied);
  EXPECT_NE(n.objects->Find(of_dead)->value.data.find("its host was unplugged"), std::string::npos)
      << n.objects->Find(of_dead)->value.data;
  EXPECT_EQ(n.objects->Find(of_nobody)->value.kind, ObjectKind::kObjectLost);
  EXPECT_NE(n.objects->Find(of_nobody)->value.data.find("not part of this cluster"), std::string::npos);
  EXPECT_EQ(n.directory->stats().borrows_registered, 0u) << "nothing to register with";
  EXPECT_EQ(n.directory->pending_registrations(), 0u);
}

TEST(ObjectDirectory, TheReleaseBarrierWaitsForAcknowledgements) {
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  int sent = 0;
  borrower.directory->DeferRelease([&] { ++sent; });
  EXPECT_EQ(sent, 1) << "nothing pending: at once";

  ObjectID id = owner.PutInline(1, "x");
  borrower.Refs(id, +1);
  EXPECT_EQ(borrower.directory->pending_registrations(), 1u);
  borrower.directory->DeferRelease([&] { ++sent; });
  borrower.directory->DeferRelease([&] { sent += 10; });
  EXPECT_EQ(sent, 1) << "a registration is unacknowledged";
  ASSERT_TRUE(c.RunUntil([&] { return sent == 12; }));
  EXPECT_EQ(borrower.directory->pending_registrations(), 0u);
}

TEST(ObjectDirectory, TheBarrierDoesNotWaitForADeadOwner) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  borrower.drop = [](uint32_t, MessageType t) { return t == MessageType::kBorrowAck; };  // never acknowledged
  ObjectID id = owner.PutInline(1, "x");
  borrower.Refs(id, +1);
  bool released = false;
  borrower.directory->DeferRelease([&] { released = true; });
  ASSERT_TRUE(c.RunUntil([&] { return borrower.Count(MessageType::kBorrowAck) == 1; }));
  c.RunFor(50ms);
  EXPECT_FALSE(released);
  c.Kill(1);
  EXPECT_TRUE(released) << "the dead owner's acknowledgement will never come";
  EXPECT_EQ(borrower.directory->pending_registrations(), 0u);
}

TEST(ObjectDirectory, AWaitingBorrowOfADeadOwnerFailsWithOwnerDied) {
  // Node 2 waits for the value of a task return node 1 owns; node 1 dies before it is computed.
  TestCluster c(2);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID ret = ObjectID::Make(owner.Client(), 7, 0).ReturnId(0);
  owner.objects->AddReturnHolder(owner.Client(), ret);
  borrower.Refs(ret, +1);
  borrower.objects->RequestValue(ret);
  ASSERT_TRUE(c.RunUntil([&] { return owner.Count(MessageType::kSubscribeObject) == 1; }));
  c.Kill(1, "its host rebooted");
  ASSERT_TRUE(c.RunUntil([&] { return borrower.objects->IsSealed(ret); }, 2s))
      << "readers of an object whose owner died must not wait for ever";
  EXPECT_EQ(borrower.objects->Find(ret)->value.kind, ObjectKind::kOwnerDied);
  EXPECT_NE(borrower.objects->Find(ret)->value.data.find("node 1"), std::string::npos)
      << borrower.objects->Find(ret)->value.data;
}

TEST(ObjectDirectory, ABorrowersDeathReleasesItsBorrows) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID id = owner.PutInline(1, "x");
  borrower.Refs(id, +1);
  borrower.Refs(id, +1, /*client=*/6);  // two clients there: still one borrow of the node
  ASSERT_TRUE(c.RunUntil([&] { return borrower.Count(MessageType::kBorrowAck) == 1; }));
  owner.Refs(id, -1);
  c.RunFor(20ms);
  ASSERT_FALSE(Contains(owner.freed, id));
  c.Kill(2);
  EXPECT_TRUE(Contains(owner.freed, id)) << "a dead node's borrows end with it";
}

TEST(ObjectDirectory, FreeingAnObjectTellsEveryNodeHoldingACopy) {
  TestCluster c(3);
  TestNode& owner = c.node(1);
  ObjectID id = owner.PutInline(1, "x");
  owner.directory->SetPrimary(id, 2);  // node 2 computed it and keeps the primary copy
  owner.directory->OnAddLocation(3, {id});
  EXPECT_EQ(owner.directory->LocationsOf(id), (std::vector<uint32_t>{2, 3})) << "primary first";
  owner.Refs(id, -1);
  ASSERT_TRUE(c.RunUntil([&] {
    return c.node(2).Count(MessageType::kFreeObject) == 1 && c.node(3).Count(MessageType::kFreeObject) == 1;
  }));
  EXPECT_EQ(owner.directory->stats().frees_sent, 2u);
  EXPECT_TRUE(owner.directory->LocationsOf(id).empty());
}

TEST(ObjectDirectory, ACopyReportedForAFreedObjectIsToldToGo) {
  TestCluster c(2);
  TestNode& owner = c.node(1);
  ObjectID gone = ObjectID::Make(owner.Client(), 5, ObjectID::kPutIndex);
  owner.directory->OnAddLocation(2, {gone});
  ASSERT_TRUE(c.RunUntil([&] { return c.node(2).Count(MessageType::kFreeObject) == 1; }));
  EXPECT_TRUE(owner.directory->LocationsOf(gone).empty());
}

TEST(ObjectDirectory, LocationsComeFromTheOwnerAndDeadNodesLeaveThem) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &reader = c.node(2);
  ObjectID id = owner.PutStored(1, 4096, 3);
  reader.Refs(id, +1);
  reader.objects->RequestValue(id);
  ASSERT_TRUE(c.RunUntil([&] { return reader.objects->IsSealed(id); }));
  EXPECT_EQ(reader.objects->Find(id)->value.kind, ObjectKind::kStored);
  EXPECT_EQ(reader.directory->LocationsOf(id), (std::vector<uint32_t>{1})) << "the owner holds the bytes";
  reader.directory->NoteLocations(id, {3, 1, 3});
  EXPECT_EQ(reader.directory->LocationsOf(id), (std::vector<uint32_t>{1, 3})) << "no duplicates";
  c.Kill(3);
  EXPECT_EQ(reader.directory->LocationsOf(id), (std::vector<uint32_t>{1}));
}

TEST(ObjectDirectory, OnlyTheOwnerIsBelieved) {
  TestCluster c(3);
  TestNode &owner = c.node(1), &borrower = c.node(2);
  ObjectID id = owner.PutInline(1, "real");
  borrower.drop = [](uint32_t, MessageType t) { return t == MessageType::kBorrowAck; };
  borrower.Refs(id, +1);
  ASSERT_TRUE(c.RunUntil([&] { return borrower.Count(MessageType::kBorrowAck) == 1; }));
  // Node 3 claims things about node 1's object.
  protocol::BorrowAck ack;
  ack.ids.push_back({id, false});
  borrower.directory->OnBorrowAck(3, ack);
  EXPECT_EQ(borrower.directory->pending_registrations(), 1u) << "an ack from a non-owner is ignored";
  EXPECT_FALSE(borrower.objects->IsSealed(id)) << "and does not declare the object lost";
  protocol::ObjectInfo info;
  info.object_id = id;
  info.value.data = "forged";
  borrower.directory->OnObjectInfo(3, info);
  EXPECT_FALSE(borrower.objects->IsSealed(id));
  // The owner's own answer is taken.
  borrower.directory->OnBorrowAck(1, protocol::BorrowAck{{{id, true}}});
  EXPECT_EQ(borrower.directory->pending_registrations(), 0u);
}

TEST(ObjectDirectory, AnAddBorrowerForAnIdOfAnotherNodeIsRefused) {
  TestCluster c(3);
  TestNode& n1 = c.node(1);
  ObjectID of_node2 = c.node(2).PutInline(1, "x");
  n1.directory->OnAddBorrower(3, {of_node2});  // node 3 mistakes node 1 for the owner
  ASSERT_TRUE(c.RunUntil([&] { return c.node(3).Count(MessageType::kBorrowAck) == 1; }));
  EXPECT_EQ(n1.objects->Find(of_node2), nullptr) << "no entry invented for someone else's id";
}

}  // namespace
}  // namespace quanta
