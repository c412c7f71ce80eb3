// Unit tests for object_store/object_table.h: reference counting, nested refs, subscribers.
#include "object_store/object_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace quanta {
namespace {

using protocol::ObjectKind;
using protocol::ObjectValue;

ObjectID O(uint32_t n) { return ObjectID::Make(0x5555, n, ObjectID::kPutIndex); }

ObjectValue Val(std::string data, std::vector<ObjectID> nested = {}) {
  ObjectValue v;
  v.data = std::move(data);
  v.nested_refs = std::move(nested);
  return v;
}

int64_t Refs(const ObjectTable& t, const ObjectID& id) {
  const ObjectTable::Entry* e = t.Find(id);
  return e ? e->refs : -1;
}

// A reference to an object of ours: created (a task return or a put) on first use.
void Ref(ObjectTable& t, const ObjectID& id, int64_t n = 1) {
  t.CreatePending(id);
  EXPECT_TRUE(t.AddRef(id, n));
}

bool Contains(const std::vector<ObjectID>& v, const ObjectID& id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

TEST(ObjectTable, CreatePendingThenAddRef) {
  ObjectTable t;
  EXPECT_EQ(t.Find(O(1)), nullptr);
  Ref(t, O(1));
  ASSERT_NE(t.Find(O(1)), nullptr);
  EXPECT_FALSE(t.IsSealed(O(1)));
  EXPECT_EQ(Refs(t, O(1)), 1);
  Ref(t, O(1), 3);
  EXPECT_EQ(Refs(t, O(1)), 4);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ObjectTable, ReferenceToAnUnknownIdOfOursCreatesNothing) {
  ObjectTable t;
  t.set_local_node(3);
  ObjectID ours = ObjectID::Make(uint64_t{3} << 32 | 7, 1, 1);
  EXPECT_FALSE(t.AddRef(ours)) << "freed or forged: no pending entry a reader would wait on";
  EXPECT_EQ(t.Find(ours), nullptr);
  // The same holds inside a sealed value: the ref is dropped from its nested list.
  ObjectID container = ObjectID::Make(uint64_t{3} << 32 | 7, 2, 1);
  t.CreatePending(container);
  EXPECT_TRUE(t.AddRef(container));
  (void)t.Seal(container, Val("c", {ours}));
  EXPECT_EQ(t.Find(ours), nullptr);
  EXPECT_TRUE(t.Find(container)->value.nested_refs.empty());
}

TEST(ObjectTable, ForeignIdsAreBorrowsErasedAtZeroEvenUnsealed) {
  ObjectTable t;
  t.set_local_node(3);
  std::vector<ObjectID> started;
  t.set_on_borrow_started([&](const ObjectID& id) { started.push_back(id); });
  ObjectID theirs = ObjectID::Make(uint64_t{5} << 32 | 1, 9, 1);
  EXPECT_TRUE(t.IsForeign(theirs));
  EXPECT_TRUE(t.AddRef(theirs));
  EXPECT_TRUE(t.AddRef(theirs));
  EXPECT_EQ(started, std::vector<ObjectID>{theirs}) << "registered once, at the first reference";
  ASSERT_NE(t.Find(theirs), nullptr);
  EXPECT_TRUE(t.Find(theirs)->borrowed);
  std::vector<ObjectID> freed;
  t.RemoveRef(theirs, 2, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{theirs}) << "a borrow ends at zero, sealed or not";
  EXPECT_EQ(t.Find(theirs), nullptr);
}

TEST(ObjectTable, BorrowedValueDoesNotPinTheRefsInside) {
  ObjectTable t;
  t.set_local_node(3);
  ObjectID theirs = ObjectID::Make(uint64_t{5} << 32 | 1, 9, 1);
  ObjectID inner = ObjectID::Make(uint64_t{6} << 32 | 1, 4, 1);
  int borrows = 0;
  t.set_on_borrow_started([&](const ObjectID&) { ++borrows; });
  t.AddRef(theirs);
  (void)t.Seal(theirs, Val("v", {inner}));
  EXPECT_EQ(borrows, 1) << "the owner's entry keeps `inner` alive; no borrow of it here";
  EXPECT_EQ(t.Find(inner), nullptr);
}

TEST(ObjectTable, SealedObjectErasedWhenLastRefDropped) {
  ObjectTable t;
  Ref(t, O(1), 2);
  EXPECT_TRUE(t.Seal(O(1), Val("abc")).empty());
  EXPECT_TRUE(t.IsSealed(O(1)));
  EXPECT_EQ(t.Find(O(1))->value.data, "abc");
  std::vector<ObjectID> freed;
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_TRUE(freed.empty());
  EXPECT_TRUE(t.IsSealed(O(1)));
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
  EXPECT_EQ(t.Find(O(1)), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, RemoveSeveralRefsAtOnce) {
  ObjectTable t;
  Ref(t, O(1), 5);
  (void)t.Seal(O(1), Val("x"));
  std::vector<ObjectID> freed;
  t.RemoveRef(O(1), 4, &freed);
  EXPECT_EQ(Refs(t, O(1)), 1);
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
}

TEST(ObjectTable, PendingObjectSurvivesZeroRefsUntilSealed) {
  ObjectTable t;
  Ref(t, O(1));
  std::vector<ObjectID> freed;
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_TRUE(freed.empty()) << "a pending object is not freed";
  ASSERT_NE(t.Find(O(1)), nullptr);
  EXPECT_EQ(Refs(t, O(1)), 0);
  (void)t.Seal(O(1), Val("late"));
  EXPECT_TRUE(t.IsSealed(O(1))) << "the caller notifies subscribers before erasing";
  t.EraseIfUnreferenced(O(1), &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
  EXPECT_EQ(t.Find(O(1)), nullptr);
}

TEST(ObjectTable, EraseIfUnreferencedKeepsReferencedAndPending) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  Ref(t, O(1));
  (void)t.Seal(O(1), Val("held"));
  t.EraseIfUnreferenced(O(1), &freed);
  EXPECT_TRUE(t.IsSealed(O(1)));
  Ref(t, O(2));
  t.RemoveRef(O(2), 1, &freed);
  t.EraseIfUnreferenced(O(2), &freed);  // pending: kept
  EXPECT_NE(t.Find(O(2)), nullptr);
  t.EraseIfUnreferenced(O(3), &freed);  // unknown: no-op
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(t.size(), 2u);
}

TEST(ObjectTable, SealUnknownObjectThenErase) {
  ObjectTable t;
  (void)t.Seal(O(1), Val("orphan"));
  EXPECT_TRUE(t.IsSealed(O(1)));
  EXPECT_EQ(Refs(t, O(1)), 0);
  std::vector<ObjectID> freed;
  t.EraseIfUnreferenced(O(1), &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
}

TEST(ObjectTable, RemoveRefOfUnknownObjectIsIgnored) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  t.RemoveRef(O(9), 1, &freed);
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, NegativeCountClampsToZeroAndFrees) {
  ObjectTable t;
  Ref(t, O(1));
  (void)t.Seal(O(1), Val("x"));
  std::vector<ObjectID> freed;
  t.RemoveRef(O(1), 5, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
  EXPECT_EQ(t.Find(O(1)), nullptr);
}

TEST(ObjectTable, NullFreedListIsAllowed) {
  ObjectTable t;
  Ref(t, O(1));
  Ref(t, O(2));
  (void)t.Seal(O(2), Val("inner"));
  t.RemoveRef(O(2), 1, nullptr);
  EXPECT_EQ(t.Find(O(2)), nullptr);
  Ref(t, O(3));
  (void)t.Seal(O(3), Val("inner"));
  (void)t.Seal(O(1), Val("outer", {O(3)}));
  t.RemoveRef(O(3), 1, nullptr);
  t.RemoveRef(O(1), 1, nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, NestedRefsKeptAliveByOuterObject) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  // inner = put(1); outer = put([inner]); the driver then drops its own ref to inner.
  Ref(t, O(1));
  (void)t.Seal(O(1), Val("inner"));
  Ref(t, O(2));
  (void)t.Seal(O(2), Val("outer", {O(1)}));
  EXPECT_EQ(Refs(t, O(1)), 2);
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_TRUE(freed.empty());
  EXPECT_TRUE(t.IsSealed(O(1))) << "outer still holds inner";
  // Dropping outer releases inner too.
  t.RemoveRef(O(2), 1, &freed);
  EXPECT_EQ(freed.size(), 2u);
  EXPECT_TRUE(Contains(freed, O(1)));
  EXPECT_TRUE(Contains(freed, O(2)));
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, NestedRefStillHeldElsewhereSurvives) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  Ref(t, O(1));
  (void)t.Seal(O(1), Val("inner"));
  Ref(t, O(2));
  (void)t.Seal(O(2), Val("outer", {O(1)}));
  t.RemoveRef(O(2), 1, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(2)});
  EXPECT_TRUE(t.IsSealed(O(1)));
  EXPECT_EQ(Refs(t, O(1)), 1);
}

TEST(ObjectTable, NestedRefsReleasedTransitively) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  // a contains b, b contains c (and c twice, as in [c, c]); only a is held directly.
  Ref(t, O(3));
  (void)t.Seal(O(3), Val("c"));
  Ref(t, O(2));
  (void)t.Seal(O(2), Val("b", {O(3), O(3)}));
  Ref(t, O(1));
  (void)t.Seal(O(1), Val("a", {O(2)}));
  t.RemoveRef(O(3), 1, &freed);
  t.RemoveRef(O(2), 1, &freed);
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(Refs(t, O(3)), 2);
  EXPECT_EQ(Refs(t, O(2)), 1);
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_EQ(freed.size(), 3u);
  for (uint32_t i = 1; i <= 3; ++i) EXPECT_TRUE(Contains(freed, O(i))) << i;
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.inline_bytes(), 0u);
}

TEST(ObjectTable, LongNestedChainIsReleased) {
  ObjectTable t;
  const uint32_t n = 2000;
  // Object i contains object i-1; only the last is held.
  for (uint32_t i = 0; i < n; ++i) {
    Ref(t, O(i));
    std::vector<ObjectID> nested;
    if (i > 0) nested.push_back(O(i - 1));
    (void)t.Seal(O(i), Val("v", nested));
    if (i > 0) t.RemoveRef(O(i - 1), 1, nullptr);
  }
  EXPECT_EQ(t.size(), n);
  std::vector<ObjectID> freed;
  t.RemoveRef(O(n - 1), 1, &freed);
  EXPECT_EQ(freed.size(), n);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, VeryLongNestedChainDoesNotOverflowTheStack) {
  // A driver can build such a chain with `r = put(0); for _ in range(n): r = put([r])`.
  // Dropping the head releases the whole chain; doing so recursively (one C++ stack frame
  // group per link) overflows the stack and kills the node daemon.
  ObjectTable t;
  const uint32_t n = 200000;
  for (uint32_t i = 0; i < n; ++i) {
    Ref(t, O(i));
    std::vector<ObjectID> nested;
    if (i > 0) nested.push_back(O(i - 1));
    (void)t.Seal(O(i), Val("v", nested));
    if (i > 0) t.RemoveRef(O(i - 1), 1, nullptr);
  }
  std::vector<ObjectID> freed;
  t.RemoveRef(O(n - 1), 1, &freed);
  EXPECT_EQ(freed.size(), n);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, NestedRefToPendingObject) {
  ObjectTable t;
  std::vector<ObjectID> freed;
  // outer contains the ref of a task return that is not computed yet (submitted: it exists).
  Ref(t, O(1));
  t.CreatePending(O(2));
  (void)t.Seal(O(1), Val("outer", {O(2)}));
  EXPECT_FALSE(t.IsSealed(O(2)));
  EXPECT_EQ(Refs(t, O(2)), 1);
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_EQ(freed, std::vector<ObjectID>{O(1)});
  ASSERT_NE(t.Find(O(2)), nullptr) << "pending objects wait for their value";
  (void)t.Seal(O(2), Val("result"));
  t.EraseIfUnreferenced(O(2), &freed);
  EXPECT_TRUE(Contains(freed, O(2)));
  EXPECT_EQ(t.size(), 0u);
}

TEST(ObjectTable, SubscribersReturnedOnSeal) {
  ObjectTable t;
  Ref(t, O(1));
  EXPECT_FALSE(t.Subscribe(O(1), 11));
  EXPECT_FALSE(t.Subscribe(O(1), 22));
  EXPECT_EQ(t.Find(O(1))->subscribers.size(), 2u);
  std::vector<uint64_t> subs = t.Seal(O(1), Val("v"));
  EXPECT_EQ(subs, (std::vector<uint64_t>{11, 22}));
  EXPECT_TRUE(t.Find(O(1))->subscribers.empty()) << "cleared from the entry";
  EXPECT_TRUE(t.Subscribe(O(1), 33)) << "already sealed: the caller sends it now";
  EXPECT_TRUE(t.Find(O(1))->subscribers.empty()) << "no need to remember late subscribers";
}

TEST(ObjectTable, SubscribeToUnknownObjectCreatesPendingEntry) {
  ObjectTable t;
  EXPECT_FALSE(t.Subscribe(O(1), 5));
  ASSERT_NE(t.Find(O(1)), nullptr);
  EXPECT_EQ(Refs(t, O(1)), 0);
  std::vector<uint64_t> subs = t.Seal(O(1), Val("v"));
  EXPECT_EQ(subs, std::vector<uint64_t>{5});
}

TEST(ObjectTable, DoubleSealKeepsFirstValue) {
  ObjectTable t;
  Ref(t, O(1));
  t.Subscribe(O(1), 7);
  Ref(t, O(8));
  (void)t.Seal(O(8), Val("n"));
  std::vector<uint64_t> first = t.Seal(O(1), Val("first", {O(8)}));
  EXPECT_EQ(first, std::vector<uint64_t>{7});
  size_t bytes = t.inline_bytes();
  EXPECT_EQ(Refs(t, O(8)), 2);

  ObjectValue second = Val("second value", {O(8), O(9)});
  second.kind = ObjectKind::kTaskError;
  t.Subscribe(O(1), 8);  // returns true; nothing stored
  std::vector<uint64_t> again = t.Seal(O(1), second);
  EXPECT_TRUE(again.empty());
  const ObjectTable::Entry* e = t.Find(O(1));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->value.data, "first");
  EXPECT_EQ(e->value.kind, ObjectKind::kPickled);
  EXPECT_EQ(e->value.nested_refs, std::vector<ObjectID>{O(8)});
  EXPECT_EQ(Refs(t, O(8)), 2) << "the discarded value's nested refs are not pinned";
  EXPECT_EQ(t.Find(O(9)), nullptr);
  EXPECT_EQ(t.inline_bytes(), bytes);
}

TEST(ObjectTable, InlineBytesAccounting) {
  ObjectTable t;
  EXPECT_EQ(t.inline_bytes(), 0u);
  Ref(t, O(1));
  Ref(t, O(2));
  (void)t.Seal(O(1), Val(std::string(1000, 'a')));
  (void)t.Seal(O(2), Val(std::string(24, 'b')));
  EXPECT_EQ(t.inline_bytes(), 1024u);
  std::vector<ObjectID> freed;
  t.RemoveRef(O(1), 1, &freed);
  EXPECT_EQ(t.inline_bytes(), 24u);
  t.RemoveRef(O(2), 1, &freed);
  EXPECT_EQ(t.inline_bytes(), 0u);
}

TEST(ObjectTable, ManyObjectsAndRehashing) {
  // Sealing pins nested refs (inserting entries: borrows of another node's objects) while
  // holding a reference to the entry being sealed: growing the table must not disturb it.
  ObjectTable t;
  t.set_local_node(1);
  const uint32_t n = 5000;
  std::vector<ObjectID> nested;
  for (uint32_t i = 0; i < n; ++i) nested.push_back(ObjectID::Make(uint64_t{2} << 32 | 1, 100000 + i, 1));
  ObjectID outer = ObjectID::Make(uint64_t{1} << 32 | 1, 1, ObjectID::kPutIndex);
  Ref(t, outer);
  (void)t.Seal(outer, Val("big", nested));
  EXPECT_EQ(t.size(), n + 1);
  EXPECT_EQ(t.Find(outer)->value.data, "big");
  EXPECT_EQ(t.Find(outer)->value.nested_refs.size(), n);
  std::vector<ObjectID> freed;
  t.RemoveRef(outer, 1, &freed);
  EXPECT_EQ(freed.size(), n + 1) << "the borrows it held end with it";
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace quanta
