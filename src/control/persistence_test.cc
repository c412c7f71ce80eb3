// The control service's tables written through a real TableStore (an SQLite file) and restored
// into fresh tables, as a restarted head does: nodes (alive ones awaiting their rejoin until a
// deadline), actors with their subscribers and names, the KV store, jobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "control/actor_directory.h"
#include "control/job_table.h"
#include "control/kv_store.h"
#include "control/node_table.h"
#include "control/placement_groups.h"
#include "control/table_store.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::ActorInfo;
using State = ActorInfo::State;
using Clock = NodeTable::Clock;

class Persistence : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/persistence_XXXXXX";
    path_ = std::string(::mkdtemp(tmpl.data())) + "/head.db";
    Reopen();
  }
  // As a head restart does: the old store closed, the file opened again.
  void Reopen() {
    store_.reset();
    auto s = OpenTableStore(path_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  std::string path_;
  std::unique_ptr<TableStore> store_;
};

protocol::NodeInfo Info(const std::string& id) {
  protocol::NodeInfo n;
  n.node_id = id;
  n.address = "10.0.0.1";
  n.port = 7000;
  n.total = {{"CPU", 4 * protocol::kResourceUnit}};
  n.available = n.total;
  return n;
}

TEST_F(Persistence, NodesComeBackUnderTheirIndicesAndAwaitTheirRejoinUntilTheDeadline) {
  auto now = Clock::now();
  uint64_t inc_a = 0;
  {
    NodeTable t(store_.get());
    inc_a = t.Register(Info("aaaa"), now).value()->incarnation;
    t.Register(Info("bbbb"), now).value();
    t.Register(Info("cccc"), now).value();
    ASSERT_TRUE(t.MarkDead(3, "its connection closed"));
  }
  Reopen();
  NodeTable t(store_.get());
  auto later = now + 1h;  // far past any heartbeat timeout
  auto waiting = t.Restore(later + 10s);
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  EXPECT_EQ(waiting.value(), 2u);
  ASSERT_EQ(t.All().size(), 3u);
  EXPECT_TRUE(t.Find(1)->alive);
  EXPECT_TRUE(t.Find(1)->available.empty()) << "unknown until the node reports again";
  EXPECT_FALSE(t.Find(3)->alive);
  EXPECT_EQ(t.Find(3)->death_reason, "its connection closed");
  // Within the grace nobody is silent, however long ago they were heard.
  EXPECT_TRUE(t.Silent(later, 3s).empty());
  // Node 1 rejoins under its index and keeps its incarnation; node 2 never does.
  protocol::NodeInfo again = Info("aaaa");
  again.node_index = 1;
  auto rejoined = t.Register(again, later + 1s);
  ASSERT_TRUE(rejoined.ok()) << rejoined.status().ToString();
  EXPECT_EQ(rejoined.value()->incarnation, inc_a);
  EXPECT_EQ(t.Silent(later + 11s, 30s), (std::vector<uint32_t>{2}));
  // A dead node stays dead; new nodes get fresh indices and incarnations.
  protocol::NodeInfo dead = Info("cccc");
  dead.node_index = 3;
  EXPECT_FALSE(t.Register(dead, later).ok());
  auto fresh = t.Register(Info("dddd"), later);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh.value()->node_index, 4u);
  EXPECT_GT(fresh.value()->incarnation, inc_a);
}

TEST_F(Persistence, ActorsTheirSubscribersAndNamesSurvive) {
  ObjectID a = ObjectID::Make((uint64_t{1} << 32) | 1, 1, 0);
  ObjectID b = ObjectID::Make((uint64_t{1} << 32) | 1, 2, 0);
  auto report = [](const ObjectID& id, State s, uint32_t node) {
    ActorInfo i;
    i.actor_id = id;
    i.state = s;
    i.node_index = node;
    i.owner_node = 1;
    i.class_name = "Counter";
    i.detached = true;
    return i;
  };
  {
    ActorDirectory d(store_.get());
    ASSERT_TRUE(d.RegisterName("ns", "counter", a, "handle-a").ok());
    ASSERT_TRUE(d.RegisterName("ns", "gone", b, "handle-b").ok());
    d.Update(report(a, State::kAlive, 2));
    d.Subscribe(3, a);
    d.Update(report(b, State::kAlive, 2));
    d.Update(report(b, State::kDead, 2));  // frees its name
    ObjectID c = ObjectID::Make((uint64_t{1} << 32) | 1, 3, 0);
    ASSERT_TRUE(d.RegisterName("ns", "dropped", c, "handle-c").ok());
    d.DropName("ns", "dropped");
  }
  Reopen();
  ActorDirectory d(store_.get());
  auto n = d.Restore();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), 3u);
  ASSERT_NE(d.LookupName("ns", "counter"), nullptr);
  EXPECT_EQ(*d.LookupName("ns", "counter"), "handle-a");
  EXPECT_EQ(d.LookupName("ns", "gone"), nullptr);
  EXPECT_EQ(d.LookupName("ns", "dropped"), nullptr);
  ASSERT_NE(d.Find(a), nullptr);
  EXPECT_EQ(d.Find(a)->state, State::kAlive);
  EXPECT_EQ(d.Find(a)->name, "counter");
  EXPECT_TRUE(d.Find(a)->detached);
  EXPECT_EQ(d.Find(b)->state, State::kDead);
  // Node 3's subscription came back with it: it hears of the next change.
  EXPECT_EQ(d.Update(report(a, State::kAlive, 2)), (std::vector<uint32_t>{3}));
  // A node's death is persisted too.
  d.OnNodeDead(2, "gone", [](uint32_t) { return false; });
  Reopen();
  ActorDirectory after(store_.get());
  ASSERT_TRUE(after.Restore().ok());
  EXPECT_EQ(after.Find(a)->state, State::kDead);
  EXPECT_EQ(after.LookupName("ns", "counter"), nullptr);
}

TEST_F(Persistence, KvKeysInEveryNamespaceSurviveAndDeletesStick) {
  std::string odd_ns("n\0s", 3), odd_key("k\0\xff", 3);
  {
    KvStore kv(store_.get());
    ASSERT_TRUE(kv.Put("", "a", "1", false).ok());
    ASSERT_TRUE(kv.Put("", "a", "2", true).ok());   // overwritten
    ASSERT_TRUE(kv.Put("", "a", "3", false).ok());  // not overwritten
    ASSERT_TRUE(kv.Put(odd_ns, odd_key, std::string(100000, 'v'), false).ok());
    ASSERT_TRUE(kv.Put("x", "p/1", "1", false).ok());
    ASSERT_TRUE(kv.Put("x", "p/2", "2", false).ok());
    ASSERT_TRUE(kv.Put("x", "q", "3", false).ok());
    EXPECT_EQ(kv.Delete("x", "p/", true), 2u);
  }
  Reopen();
  KvStore kv(store_.get());
  auto n = kv.Restore();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), 3u);
  EXPECT_EQ(kv.size(), 3u);
  EXPECT_EQ(*kv.Get("", "a"), "2");
  ASSERT_NE(kv.Get(odd_ns, odd_key), nullptr);
  EXPECT_EQ(kv.Get(odd_ns, odd_key)->size(), 100000u);
  EXPECT_EQ(kv.List("x", ""), (std::vector<std::string>{"q"}));
}

TEST_F(Persistence, JobsSurviveWithTheirStatus) {
  {
    JobTable jobs(store_.get());
    protocol::JobInfo j;
    j.job_id = (uint64_t{1} << 32) | 1;
    j.node_index = 1;
    j.entrypoint = "python a.py";
    j.start_time_ms = 100;
    jobs.Started(j);
    j.job_id = (uint64_t{2} << 32) | 1;
    j.node_index = 2;
    jobs.Started(j);
    jobs.Finished(j.job_id, 200);
  }
  Reopen();
  JobTable jobs(store_.get());
  ASSERT_TRUE(jobs.Restore().ok());
  auto all = jobs.All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].status, protocol::JobStatus::kRunning);
  EXPECT_EQ(all[0].entrypoint, "python a.py");
  EXPECT_EQ(all[1].status, protocol::JobStatus::kSucceeded);
  EXPECT_EQ(all[1].end_time_ms, 200u);
  // The running one ends when its node is found dead after the restart.
  EXPECT_EQ(jobs.OnNodeDead(1, 300).size(), 1u);
}

TEST_F(Persistence, CreatedGroupsStayCreatedAndOnesBeingPlacedWaitForTheirNodesToReturnBundles) {
  using protocol::PlacementGroupInfo;
  auto cpu = [](int64_t n) { return protocol::ResourceMap{{"CPU", n * protocol::kResourceUnit}}; };
  auto spec = [&](uint32_t seq) {
    protocol::PlacementGroupSpec s;
    s.id = ObjectID::Make(0xABCD, seq, ObjectID::kPutIndex);
    s.strategy = protocol::PlacementStrategy::kStrictSpread;
    s.bundles = {cpu(1), cpu(1)};
    return s;
  };
  std::vector<std::pair<uint32_t, protocol::BundleReservation>> reserved;
  PlacementGroupManager::Callbacks cb{
      [&](uint32_t node, const protocol::BundleReservation& r) { reserved.push_back({node, r}); },
      [](const ObjectID&, bool) {}};
  auto now = Clock::now();
  auto created = spec(1), placing = spec(2), removed = spec(3);
  {
    NodeTable nodes(store_.get());
    nodes.Register(Info("aaaa"), now).value();
    nodes.Register(Info("bbbb"), now).value();
    PlacementGroupManager m(&nodes, cb, store_.get());
    ASSERT_TRUE(m.Create(created).ok());
    for (const auto& [node, r] : reserved) m.OnReserved(node, protocol::BundlesReserved{r.group, true, ""});
    reserved.clear();
    ASSERT_TRUE(m.Create(placing).ok());  // asked, not answered: the head dies now
    ASSERT_EQ(reserved.size(), 2u);
    reserved.clear();
    ASSERT_TRUE(m.Create(removed).ok());
    m.Remove(removed.id, "by the test");
  }
  reserved.clear();
  Reopen();
  NodeTable nodes(store_.get());
  ASSERT_TRUE(nodes.Restore(now + 10s).ok());
  PlacementGroupManager m(&nodes, cb, store_.get());
  auto n = m.Restore();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n.value(), 3u);
  auto state = [&](const ObjectID& id) {
    protocol::PlacementGroupQuery q;
    q.id = id;
    return m.Query(q).at(0).state;
  };
  EXPECT_EQ(state(created.id), PlacementGroupInfo::State::kCreated);
  EXPECT_EQ(state(removed.id), PlacementGroupInfo::State::kRemoved);
  EXPECT_EQ(state(placing.id), PlacementGroupInfo::State::kPending);
  EXPECT_EQ(m.StaleGroups(), (std::vector<ObjectID>{placing.id}));
  // Not placed again while a node that may hold its bundles has not rejoined.
  protocol::NodeInfo a = Info("aaaa");
  a.node_index = 1;
  ASSERT_TRUE(nodes.Register(a, now + 1s).ok());
  m.Retry();
  EXPECT_TRUE(reserved.empty());
  protocol::NodeInfo b = Info("bbbb");
  b.node_index = 2;
  ASSERT_TRUE(nodes.Register(b, now + 1s).ok());
  m.Retry();
  EXPECT_EQ(reserved.size(), 2u) << "placed again once both rejoined (and were told to return its bundles)";
  EXPECT_TRUE(m.StaleGroups().empty());
}

TEST_F(Persistence, ACorruptRowIsAClearErrorNotAPartialTable) {
  ASSERT_TRUE(store_->Put("nodes", U32Key(1), "garbage").ok());
  NodeTable t(store_.get());
  auto r = t.Restore(Clock::now());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("corrupt row in table nodes of sqlite:" + path_), std::string::npos)
      << r.status().message();
}

TEST_F(Persistence, WithoutAStoreNothingIsRestored) {
  NodeTable t;
  EXPECT_EQ(t.Restore(Clock::now()).value(), 0u);
  KvStore kv;
  EXPECT_EQ(kv.Restore().value(), 0u);
}

}  // namespace
}  // namespace quanta
