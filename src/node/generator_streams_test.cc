// Unit tests for node/generator_streams.h: items a worker yields are sealed in order at the
// owner and held by the submitter; a re-run's duplicates are dropped; items of a task run for
// another node go to its owner (with a hand-off when they carry refs); consumption counts reach
// the producer, and a new attempt is told the count with its first item.
#include "node/generator_streams.h"

#include <gtest/gtest.h>

#include <vector>

#include "net/event_loop.h"
#include "node/client_registry.h"

namespace quanta {
namespace {

using protocol::GeneratorAck;
using protocol::GeneratorItem;
using protocol::ObjectKind;
using protocol::ObjectValue;

constexpr uint64_t kSubmitter = (1ull << 32) | 7;
constexpr uint64_t kWorker = (1ull << 32) | 9;

struct GeneratorStreamsTest : ::testing::Test {
  net::EventLoop loop;
  ClientRegistry clients{&loop, (1ull << 32) | 1, nullptr, nullptr};
  ObjectManager objects{&clients, nullptr, ObjectManager::Callbacks{}};
  TaskTable tasks;
  std::vector<std::pair<uint64_t, GeneratorAck>> to_worker;
  std::vector<std::pair<uint32_t, GeneratorAck>> to_node;
  std::vector<std::pair<uint32_t, GeneratorItem>> to_owner;
  std::vector<std::pair<uint32_t, uint64_t>> handoffs_done;
  std::vector<std::pair<ObjectID, uint32_t>> primaries;
  bool submitter_alive = true;
  GeneratorStreams streams{&tasks, &objects, GeneratorStreams::Callbacks{
      [this](uint64_t) { return submitter_alive; },
      [this](uint64_t w, const GeneratorAck& a) { to_worker.emplace_back(w, a); },
      [this](uint32_t n, const GeneratorAck& a) { to_node.emplace_back(n, a); },
      [this](uint32_t o, GeneratorItem i) { to_owner.emplace_back(o, std::move(i)); },
      [](uint32_t, std::vector<ObjectID>) { return uint64_t{42}; },
      [this](uint32_t n, uint64_t h) { handoffs_done.emplace_back(n, h); },
      [this](const ObjectID& id, uint32_t n) { primaries.emplace_back(id, n); },
      [](uint32_t, const ObjectID&) {}}};

  Task& AddTask(TaskID id, uint32_t owner = 0) {
    Task& t = tasks[id];
    t.spec.task_id = id;
    t.spec.generator = protocol::TaskSpec::kStreaming;
    t.submitter = kSubmitter;
    t.worker = kWorker;
    t.owner = owner;
    return t;
  }
  static GeneratorItem Item(const TaskID& id, uint64_t k, std::string data) {
    GeneratorItem m;
    m.task_id = id;
    m.index = k;
    m.value.kind = ObjectKind::kPickled;
    m.value.data = std::move(data);
    return m;
  }
};

TaskID MakeTask(uint32_t seq) { return ObjectID::Make(kSubmitter, seq, 0); }

TEST_F(GeneratorStreamsTest, ItemsAreSealedInOrderAndHeldByTheSubmitter) {
  TaskID id = MakeTask(1);
  Task& t = AddTask(id);
  ASSERT_TRUE(streams.OnWorkerItem(kWorker, Item(id, 0, "a")).ok());
  ASSERT_TRUE(streams.OnWorkerItem(kWorker, Item(id, 1, "b")).ok());
  EXPECT_EQ(t.generator_items, 2u);
  const ObjectTable::Entry* e = objects.Find(t.spec.ItemId(1));
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->sealed);
  EXPECT_EQ(e->value.data, "b");
  EXPECT_EQ(streams.items_sealed(), 2u);
  // Out of order, from another worker, or for a task that is no generator: refused.
  EXPECT_FALSE(streams.OnWorkerItem(kWorker, Item(id, 5, "x")).ok());
  EXPECT_FALSE(streams.OnWorkerItem(kWorker + 1, Item(id, 2, "x")).ok());
  t.spec.generator = protocol::TaskSpec::kNoGenerator;
  EXPECT_FALSE(streams.OnWorkerItem(kWorker, Item(id, 2, "x")).ok());
}

TEST_F(GeneratorStreamsTest, ARerunsDuplicatesAreDroppedAndItsWorkerIsToldTheCount) {
  TaskID id = MakeTask(2);
  Task& t = AddTask(id);
  for (uint64_t k = 0; k < 3; ++k) ASSERT_TRUE(streams.OnWorkerItem(kWorker, Item(id, k, "first")).ok());
  streams.OnAck(kSubmitter, GeneratorAck{id, 2});
  ASSERT_EQ(to_worker.size(), 1u);
  EXPECT_EQ(to_worker[0].second.consumed, 2u);
  t.worker = kWorker + 2;  // the worker died; the retry runs elsewhere on this node
  ASSERT_TRUE(streams.OnWorkerItem(kWorker + 2, Item(id, 0, "second")).ok());
  ASSERT_EQ(to_worker.size(), 2u);  // the new attempt learns how far the consumer got
  EXPECT_EQ(to_worker[1].first, kWorker + 2);
  ASSERT_TRUE(streams.OnWorkerItem(kWorker + 2, Item(id, 1, "second")).ok());
  ASSERT_TRUE(streams.OnWorkerItem(kWorker + 2, Item(id, 2, "second")).ok());
  ASSERT_TRUE(streams.OnWorkerItem(kWorker + 2, Item(id, 3, "second")).ok());
  EXPECT_EQ(objects.Find(t.spec.ItemId(0))->value.data, "first");
  EXPECT_EQ(objects.Find(t.spec.ItemId(3))->value.data, "second");
  EXPECT_EQ(t.generator_items, 4u);
  EXPECT_EQ(to_worker.size(), 2u);
  // An ack from someone other than the submitter changes nothing.
  streams.OnAck(kSubmitter + 1, GeneratorAck{id, 100});
  EXPECT_EQ(t.generator_consumed, 2u);
}

TEST_F(GeneratorStreamsTest, ItemsOfARemoteTaskGoToTheOwnerWhichSealsThem) {
  TaskID id = ObjectID::Make((3ull << 32) | 5, 1, 0);  // owned by node 3
  Task& t = AddTask(id, /*owner=*/3);
  GeneratorItem item = Item(id, 0, "v");
  ObjectID nested = ObjectID::Make((1ull << 32) | 8, 4, 0).ReturnId(0);  // ours, not the owner's
  objects.AddReturnHolder(kWorker, nested);
  item.value.nested_refs = {nested};
  ASSERT_TRUE(streams.OnWorkerItem(kWorker, std::move(item)).ok());
  ASSERT_EQ(to_owner.size(), 1u);
  EXPECT_EQ(to_owner[0].first, 3u);
  EXPECT_EQ(to_owner[0].second.handoff, 42u);  // its ref is held here until the owner has it
  EXPECT_EQ(objects.Find(t.spec.ItemId(0)), nullptr);  // not sealed here
  // The owner's side: the task was forwarded to node 2.
  TaskID owned = MakeTask(3);
  Task& o = AddTask(owned);
  o.worker = 0;
  o.forwarded_to = 2;
  GeneratorItem remote = Item(owned, 0, "r");
  remote.handoff = 9;
  ASSERT_TRUE(streams.OnRemoteItem(2, std::move(remote)).ok());
  ASSERT_NE(objects.Find(o.spec.ItemId(0)), nullptr);
  ASSERT_EQ(handoffs_done.size(), 1u);
  EXPECT_EQ(handoffs_done[0], std::make_pair(2u, uint64_t{9}));
  streams.OnAck(kSubmitter, GeneratorAck{owned, 1});
  ASSERT_EQ(to_node.size(), 1u);
  EXPECT_EQ(to_node[0].first, 2u);
  // From a node it is not forwarded to: ignored (the hand-off still answered).
  GeneratorItem stray = Item(owned, 1, "s");
  stray.handoff = 10;
  ASSERT_TRUE(streams.OnRemoteItem(4, std::move(stray)).ok());
  EXPECT_EQ(o.generator_items, 1u);
  EXPECT_EQ(handoffs_done.size(), 2u);
}

TEST_F(GeneratorStreamsTest, ItemsForAGoneSubmitterAreNotKept) {
  TaskID id = MakeTask(4);
  Task& t = AddTask(id);
  submitter_alive = false;
  ASSERT_TRUE(streams.OnWorkerItem(kWorker, Item(id, 0, "a")).ok());
  EXPECT_EQ(objects.Find(t.spec.ItemId(0)), nullptr);
  EXPECT_EQ(t.generator_items, 1u);
}

}  // namespace
}  // namespace quanta
