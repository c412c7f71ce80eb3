// Unit tests for control/placement_groups.h: the planner for each strategy (PACK, SPREAD,
// STRICT_PACK, STRICT_SPREAD) including what does not fit, and the manager's life of a group
// over a real NodeTable — reservation answers, refusals, removal, node death, job end.
#include "control/placement_groups.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/resource_set.h"

namespace quanta {
namespace {

using protocol::PlacementGroupInfo;
using protocol::PlacementGroupSpec;
using protocol::PlacementStrategy;
using protocol::ResourceMap;
using State = PlacementGroupInfo::State;
using Free = std::vector<std::pair<uint32_t, ResourceMap>>;

constexpr int64_t kU = protocol::kResourceUnit;

ResourceMap Cpu(int64_t n) { return {{"CPU", n * kU}}; }

PlacementGroupSpec Spec(PlacementStrategy s, std::vector<ResourceMap> bundles, uint32_t seq = 1) {
  PlacementGroupSpec spec;
  spec.id = ObjectID::Make(0xABCD, seq, ObjectID::kPutIndex);
  spec.strategy = s;
  spec.bundles = std::move(bundles);
  return spec;
}

std::vector<uint32_t> Plan(PlacementStrategy s, std::vector<ResourceMap> bundles, const Free& free,
                           std::string* why = nullptr) {
  std::string ignored;
  return PlacementGroupManager::Plan(Spec(s, std::move(bundles)), free, why ? why : &ignored);
}

size_t Distinct(const std::vector<uint32_t>& plan) { return std::set<uint32_t>(plan.begin(), plan.end()).size(); }

// The plan must not give any node more than it has free.
void ExpectFits(const std::vector<ResourceMap>& bundles, const std::vector<uint32_t>& plan, const Free& free) {
  ASSERT_EQ(plan.size(), bundles.size());
  for (const auto& [node, res] : free) {
    ResourceSet used;
    for (size_t i = 0; i < plan.size(); ++i) {
      if (plan[i] == node) used.Add(ResourceSet(bundles[i]));
    }
    EXPECT_TRUE(ResourceSet(res).Contains(used)) << "node " << node << " over-committed: " << used.ToString();
  }
}

// ---- the planner

TEST(PlacementPlan, StrictPackPutsEverythingOnOneNode) {
  Free free = {{1, Cpu(2)}, {2, Cpu(8)}, {3, Cpu(4)}};
  auto plan = Plan(PlacementStrategy::kStrictPack, {Cpu(2), Cpu(2), Cpu(2)}, free);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(Distinct(plan), 1u);
  EXPECT_TRUE(plan[0] == 2 || plan[0] == 3) << "node 1 cannot hold 6 CPUs";
}

TEST(PlacementPlan, StrictPackRefusesWhenOnlyTheSumFits) {
  Free free = {{1, Cpu(2)}, {2, Cpu(2)}};
  std::string why;
  auto plan = Plan(PlacementStrategy::kStrictPack, {Cpu(2), Cpu(2)}, free, &why);
  EXPECT_TRUE(plan.empty());
  EXPECT_NE(why.find("STRICT_PACK"), std::string::npos) << why;
}

TEST(PlacementPlan, PackUsesOneNodeWhenItCan) {
  Free free = {{1, Cpu(4)}, {2, Cpu(4)}};
  auto plan = Plan(PlacementStrategy::kPack, {Cpu(1), Cpu(1), Cpu(2)}, free);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(Distinct(plan), 1u);
}

TEST(PlacementPlan, PackSpillsOntoAsFewNodesAsPossible) {
  Free free = {{1, Cpu(2)}, {2, Cpu(3)}, {3, Cpu(2)}};
  std::vector<ResourceMap> bundles = {Cpu(1), Cpu(1), Cpu(1), Cpu(1)};
  auto plan = Plan(PlacementStrategy::kPack, bundles, free);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(Distinct(plan), 2u);
  EXPECT_EQ(std::count(plan.begin(), plan.end(), 2u), 3) << "the roomiest node takes what it can";
  ExpectFits(bundles, plan, free);
}

TEST(PlacementPlan, PackFindsThePlacementWhenTheBigBundleComesLast) {
  // {CPU: 2} first on the roomiest node (3 CPUs) would leave no node for {CPU: 3}; the only
  // placement is 3 -> node 1, 2 -> node 2, and PACK must find it.
  Free free = {{1, Cpu(3)}, {2, Cpu(2)}};
  std::vector<ResourceMap> bundles = {Cpu(2), Cpu(3)};
  std::string why;
  auto plan = Plan(PlacementStrategy::kPack, bundles, free, &why);
  ASSERT_EQ(plan.size(), 2u) << why;
  EXPECT_EQ(plan[1], 1u);
  EXPECT_EQ(plan[0], 2u);
  ExpectFits(bundles, plan, free);
}

TEST(PlacementPlan, SpreadUsesDistinctNodesWhileItCan) {
  Free free = {{1, Cpu(4)}, {2, Cpu(4)}, {3, Cpu(4)}};
  auto plan = Plan(PlacementStrategy::kSpread, {Cpu(1), Cpu(1), Cpu(1)}, free);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(Distinct(plan), 3u);
}

TEST(PlacementPlan, SpreadWithMoreBundlesThanNodesBalances) {
  Free free = {{1, Cpu(8)}, {2, Cpu(8)}};
  std::vector<ResourceMap> bundles(5, Cpu(1));
  auto plan = Plan(PlacementStrategy::kSpread, bundles, free);
  ASSERT_EQ(plan.size(), 5u);
  int on1 = static_cast<int>(std::count(plan.begin(), plan.end(), 1u));
  EXPECT_TRUE(on1 == 2 || on1 == 3) << "5 bundles over 2 nodes: 3+2, got " << on1 << " on node 1";
}

TEST(PlacementPlan, SpreadSkipsNodesWithoutRoom) {
  Free free = {{1, Cpu(1)}, {2, {}}, {3, Cpu(4)}};
  std::vector<ResourceMap> bundles = {Cpu(1), Cpu(1), Cpu(1)};
  auto plan = Plan(PlacementStrategy::kSpread, bundles, free);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(std::count(plan.begin(), plan.end(), 2u), 0);
  ExpectFits(bundles, plan, free);
}

TEST(PlacementPlan, StrictSpreadOneBundlePerNode) {
  Free free = {{1, Cpu(4)}, {2, Cpu(4)}, {3, Cpu(4)}};
  auto plan = Plan(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1), Cpu(1)}, free);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(Distinct(plan), 3u);
}

TEST(PlacementPlan, StrictSpreadRefusesMoreBundlesThanNodes) {
  Free free = {{1, Cpu(8)}, {2, Cpu(8)}};
  std::string why;
  auto plan = Plan(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1), Cpu(1)}, free, &why);
  EXPECT_TRUE(plan.empty());
  EXPECT_NE(why.find("STRICT_SPREAD"), std::string::npos) << why;
}

TEST(PlacementPlan, StrictSpreadMatchesScarceResourcesToTheNodesThatHaveThem) {
  // Only node 1 has a GPU. The CPU bundle must not take node 1 just because it comes first.
  Free free = {{1, {{"CPU", 4 * kU}, {"GPU", 1 * kU}}}, {2, Cpu(4)}};
  std::vector<ResourceMap> bundles = {Cpu(1), {{"GPU", 1 * kU}}};
  std::string why;
  auto plan = Plan(PlacementStrategy::kStrictSpread, bundles, free, &why);
  ASSERT_EQ(plan.size(), 2u) << why;
  EXPECT_EQ(plan[1], 1u);
  EXPECT_EQ(plan[0], 2u);
}

TEST(PlacementPlan, InfeasibleResourceNamesTheBundle) {
  Free free = {{1, Cpu(8)}};
  for (auto s : {PlacementStrategy::kPack, PlacementStrategy::kSpread, PlacementStrategy::kStrictPack,
                 PlacementStrategy::kStrictSpread}) {
    std::string why;
    auto plan = Plan(s, {{{"GPU", 1 * kU}}}, free, &why);
    EXPECT_TRUE(plan.empty()) << "strategy " << static_cast<int>(s);
    EXPECT_FALSE(why.empty());
  }
  std::string why;
  Plan(PlacementStrategy::kPack, {Cpu(1), {{"GPU", 1 * kU}}}, free, &why);
  EXPECT_NE(why.find("bundle 1"), std::string::npos) << why;
  EXPECT_NE(why.find("GPU"), std::string::npos) << why;
}

TEST(PlacementPlan, NoNodesNothingFits) {
  for (auto s : {PlacementStrategy::kPack, PlacementStrategy::kSpread, PlacementStrategy::kStrictPack,
                 PlacementStrategy::kStrictSpread}) {
    std::string why;
    EXPECT_TRUE(Plan(s, {Cpu(1)}, {}, &why).empty());
    EXPECT_FALSE(why.empty());
  }
}

TEST(PlacementPlan, FractionalBundles) {
  Free free = {{1, Cpu(1)}};
  ResourceMap half = {{"CPU", kU / 2}};
  EXPECT_EQ(Plan(PlacementStrategy::kStrictPack, {half, half}, free).size(), 2u);
  EXPECT_TRUE(Plan(PlacementStrategy::kStrictPack, {half, half, half}, free).empty());
}

// Small random clusters: every plan fits the nodes, and STRICT_SPREAD (and STRICT_PACK) find a
// placement exactly when one exists (checked by trying every assignment).
TEST(PlacementPlan, RandomClustersPlansFitAndStrictOnesAreComplete) {
  uint32_t x = 12345;
  auto rnd = [&](uint32_t n) {
    x = x * 1103515245u + 12345u;
    return (x >> 16) % n;
  };
  for (int round = 0; round < 400; ++round) {
    Free free;
    size_t num_nodes = 1 + rnd(4);
    for (uint32_t k = 0; k < num_nodes; ++k) {
      ResourceMap m = Cpu(rnd(4));
      if (rnd(3) == 0) m.emplace_back("GPU", (1 + rnd(2)) * kU);
      free.emplace_back(k + 1, m);
    }
    std::vector<ResourceMap> bundles;
    size_t num_bundles = 1 + rnd(4);
    for (size_t i = 0; i < num_bundles; ++i) {
      bundles.push_back(rnd(4) == 0 ? ResourceMap{{"GPU", kU}} : Cpu(1 + rnd(2)));
    }
    // Brute force over every assignment of bundles to nodes.
    bool spread_exists = false;
    bool pack_exists = false;
    std::vector<size_t> pick(num_bundles, 0);
    while (true) {
      std::vector<uint32_t> plan;
      for (size_t p : pick) plan.push_back(free[p].first);
      bool fits = true;
      for (const auto& [node, res] : free) {
        ResourceSet used;
        for (size_t i = 0; i < plan.size(); ++i) {
          if (plan[i] == node) used.Add(ResourceSet(bundles[i]));
        }
        fits = fits && ResourceSet(res).Contains(used);
      }
      if (fits && Distinct(plan) == plan.size()) spread_exists = true;
      if (fits && Distinct(plan) == 1) pack_exists = true;
      size_t i = 0;
      while (i < pick.size() && ++pick[i] == free.size()) pick[i++] = 0;
      if (i == pick.size()) break;
    }
    for (auto s : {PlacementStrategy::kPack, PlacementStrategy::kSpread, PlacementStrategy::kStrictPack,
                   PlacementStrategy::kStrictSpread}) {
      auto plan = Plan(s, bundles, free);
      if (!plan.empty()) ExpectFits(bundles, plan, free);
      if (s == PlacementStrategy::kStrictSpread) {
        ASSERT_EQ(!plan.empty(), spread_exists) << "round " << round;
        if (!plan.empty()) {
          EXPECT_EQ(Distinct(plan), plan.size());
        }
      }
      if (s == PlacementStrategy::kStrictPack) {
        ASSERT_EQ(!plan.empty(), pack_exists) << "round " << round;
        if (!plan.empty()) {
          EXPECT_EQ(Distinct(plan), 1u);
        }
      }
      if (pack_exists && (s == PlacementStrategy::kPack || s == PlacementStrategy::kSpread)) {
        EXPECT_FALSE(plan.empty()) << "round " << round << ": fits on one node, so " << static_cast<int>(s)
                                   << " must place it";
      }
    }
  }
}

// ---- the manager

class PlacementGroupsTest : public ::testing::Test {
 protected:
  PlacementGroupsTest()
      : manager_(&nodes_, PlacementGroupManager::Callbacks{
                              [this](uint32_t node, const protocol::BundleReservation& r) { reserved_.push_back({node, r}); },
                              [this](const ObjectID& g, bool removed) { released_.push_back({g, removed}); }}) {}

  uint32_t AddNode(const std::string& id, ResourceMap res, uint8_t flags = 0) {
    protocol::NodeInfo n;
    n.node_id = id;
    n.total = res;
    n.available = res;
    n.flags = flags;
    return nodes_.Register(n, NodeTable::Clock::now()).value()->node_index;
  }
  const PlacementGroupInfo& Info(const ObjectID& id) {
    protocol::PlacementGroupQuery q;
    q.id = id;
    auto all = manager_.Query(q);
    EXPECT_EQ(all.size(), 1u);
    last_ = all.empty() ? PlacementGroupInfo{} : all[0];
    return last_;
  }
  void AnswerAll(const ObjectID& g, bool ok) {
    auto pending = reserved_;
    reserved_.clear();
    for (const auto& [node, r] : pending) {
      if (r.group == g) manager_.OnReserved(node, protocol::BundlesReserved{g, ok, ok ? "" : "no room"});
    }
  }

  NodeTable nodes_;
  PlacementGroupManager manager_;
  std::vector<std::pair<uint32_t, protocol::BundleReservation>> reserved_;
  std::vector<std::pair<ObjectID, bool>> released_;
  PlacementGroupInfo last_;
};

TEST_F(PlacementGroupsTest, CreatedOnceEveryNodeReserved) {
  uint32_t a = AddNode("a", Cpu(2));
  uint32_t b = AddNode("b", Cpu(2));
  auto spec = Spec(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  ASSERT_EQ(reserved_.size(), 2u) << "one reservation per node";
  std::set<uint32_t> asked = {reserved_[0].first, reserved_[1].first};
  EXPECT_EQ(asked, (std::set<uint32_t>{a, b}));
  for (const auto& [node, r] : reserved_) {
    ASSERT_EQ(r.bundles.size(), 1u);
    EXPECT_EQ(r.bundles[0].second, Cpu(1));
  }
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  // One answer is not enough.
  manager_.OnReserved(reserved_[0].first, protocol::BundlesReserved{spec.id, true, ""});
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  // A duplicate answer, or one from a node that was not asked, changes nothing.
  manager_.OnReserved(reserved_[0].first, protocol::BundlesReserved{spec.id, true, ""});
  manager_.OnReserved(99, protocol::BundlesReserved{spec.id, true, ""});
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  manager_.OnReserved(reserved_[1].first, protocol::BundlesReserved{spec.id, true, ""});
  EXPECT_EQ(Info(spec.id).state, State::kCreated);
  EXPECT_EQ(Info(spec.id).bundle_nodes.size(), 2u);
  EXPECT_TRUE(released_.empty());
}

TEST_F(PlacementGroupsTest, OneNodeOfAPackGroupGetsAllBundlesInOneReservation) {
  uint32_t a = AddNode("a", Cpu(8));
  auto spec = Spec(PlacementStrategy::kPack, {Cpu(1), Cpu(2), Cpu(3)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  ASSERT_EQ(reserved_.size(), 1u);
  EXPECT_EQ(reserved_[0].first, a);
  ASSERT_EQ(reserved_[0].second.bundles.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(reserved_[0].second.bundles[i].first, i) << "bundle indices kept";
}

TEST_F(PlacementGroupsTest, RefusalReleasesAndLaterRetrySucceeds) {
  AddNode("a", Cpu(2));
  AddNode("b", Cpu(2));
  auto spec = Spec(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  ASSERT_EQ(reserved_.size(), 2u);
  auto first = reserved_;
  reserved_.clear();
  manager_.OnReserved(first[0].first, protocol::BundlesReserved{spec.id, true, ""});
  manager_.OnReserved(first[1].first, protocol::BundlesReserved{spec.id, false, "the node is busy"});
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  EXPECT_NE(last_.message.find("the node is busy"), std::string::npos) << last_.message;
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], std::make_pair(spec.id, false)) << "a refusal returns the others' bundles, not for good";
  manager_.Retry();
  ASSERT_EQ(reserved_.size(), 2u) << "a retry asks again";
  AnswerAll(spec.id, true);
  EXPECT_EQ(Info(spec.id).state, State::kCreated);
}

TEST_F(PlacementGroupsTest, InfeasibleStaysPendingWithReasonUntilANodeJoins) {
  AddNode("a", Cpu(2));
  auto spec = Spec(PlacementStrategy::kStrictPack, {Cpu(2), Cpu(2)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  EXPECT_TRUE(reserved_.empty());
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  EXPECT_NE(last_.message.find("pending"), std::string::npos) << last_.message;
  manager_.Retry();
  EXPECT_TRUE(reserved_.empty());
  uint32_t big = AddNode("big", Cpu(8));
  manager_.Retry();
  ASSERT_EQ(reserved_.size(), 1u);
  EXPECT_EQ(reserved_[0].first, big);
}

TEST_F(PlacementGroupsTest, DriverAndDeadNodesAreNeverUsed) {
  uint32_t driver = AddNode("driver", Cpu(16), protocol::NodeInfo::kDriverNode);
  uint32_t dead = AddNode("dead", Cpu(16));
  nodes_.MarkDead(dead, "gone");
  auto spec = Spec(PlacementStrategy::kPack, {Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  EXPECT_TRUE(reserved_.empty());
  uint32_t worker = AddNode("worker", Cpu(1));
  manager_.Retry();
  ASSERT_EQ(reserved_.size(), 1u);
  EXPECT_EQ(reserved_[0].first, worker);
  EXPECT_NE(reserved_[0].first, driver);
}

TEST_F(PlacementGroupsTest, BadSpecsAreRefused) {
  AddNode("a", Cpu(4));
  auto spec = Spec(PlacementStrategy::kPack, {Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  EXPECT_EQ(manager_.Create(spec).code(), StatusCode::kInvalidArgument) << "same id twice";

  EXPECT_FALSE(manager_.Create(Spec(PlacementStrategy::kPack, {Cpu(1), {}}, 2)).ok()) << "an empty bundle";
  EXPECT_FALSE(manager_.Create(Spec(PlacementStrategy::kPack, {}, 3)).ok()) << "no bundles at all";
  EXPECT_FALSE(manager_.Create(Spec(PlacementStrategy::kPack, {{{"CPU", -1 * kU}}}, 4)).ok())
      << "a negative amount would make resources out of nothing on the node";
  EXPECT_FALSE(manager_.Create(Spec(PlacementStrategy::kPack, {{{"CPU", 0}}}, 5)).ok()) << "asks for nothing";
  protocol::PlacementGroupQuery all;
  EXPECT_EQ(manager_.Query(all).size(), 1u) << "refused specs leave nothing behind";
}

TEST_F(PlacementGroupsTest, NamesAreUniquePerNamespaceAndFreedByRemoval) {
  AddNode("a", Cpu(8));
  auto one = Spec(PlacementStrategy::kPack, {Cpu(1)}, 1);
  one.name = "pg";
  one.name_space = "ns1";
  ASSERT_TRUE(manager_.Create(one).ok());
  auto two = Spec(PlacementStrategy::kPack, {Cpu(1)}, 2);
  two.name = "pg";
  two.name_space = "ns1";
  Status st = manager_.Create(two);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'pg'"), std::string::npos) << st.message();
  two.name_space = "ns2";
  EXPECT_TRUE(manager_.Create(two).ok()) << "the same name in another namespace is fine";

  protocol::PlacementGroupQuery by_name;
  by_name.name = "pg";
  by_name.name_space = "ns1";
  ASSERT_EQ(manager_.Query(by_name).size(), 1u);
  EXPECT_EQ(manager_.Query(by_name)[0].spec.id, one.id);

  manager_.Remove(one.id, "test");
  EXPECT_TRUE(manager_.Query(by_name).empty()) << "a removed group is not found by name";
  auto three = Spec(PlacementStrategy::kPack, {Cpu(1)}, 3);
  three.name = "pg";
  three.name_space = "ns1";
  EXPECT_TRUE(manager_.Create(three).ok()) << "the name is free again";
}

TEST_F(PlacementGroupsTest, RemoveReleasesForGoodOnce) {
  AddNode("a", Cpu(4));
  auto spec = Spec(PlacementStrategy::kPack, {Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  AnswerAll(spec.id, true);
  manager_.Remove(spec.id, "removed by the user");
  EXPECT_EQ(Info(spec.id).state, State::kRemoved);
  EXPECT_NE(last_.message.find("removed by the user"), std::string::npos);
  manager_.Remove(spec.id, "again");
  manager_.Remove(ObjectID::Make(1, 2, 3), "unknown");
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], std::make_pair(spec.id, true));
  // A removed group is never placed again.
  manager_.Retry();
  EXPECT_TRUE(reserved_.empty());
}

TEST_F(PlacementGroupsTest, RemovedWhileReservingStaysRemoved) {
  AddNode("a", Cpu(4));
  auto spec = Spec(PlacementStrategy::kPack, {Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  ASSERT_EQ(reserved_.size(), 1u);
  manager_.Remove(spec.id, "early");
  AnswerAll(spec.id, true);  // the late yes
  EXPECT_EQ(Info(spec.id).state, State::kRemoved);
}

TEST_F(PlacementGroupsTest, NodeDeathReschedulesACreatedGroup) {
  uint32_t a = AddNode("a", Cpu(2));
  uint32_t b = AddNode("b", Cpu(2));
  auto spec = Spec(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  AnswerAll(spec.id, true);
  ASSERT_EQ(Info(spec.id).state, State::kCreated);

  nodes_.MarkDead(a, "killed");
  manager_.OnNodeDead(a);
  EXPECT_EQ(Info(spec.id).state, State::kRescheduling);
  EXPECT_FALSE(last_.message.empty());
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], std::make_pair(spec.id, false));
  EXPECT_TRUE(reserved_.empty()) << "one node left cannot hold a STRICT_SPREAD of 2";

  uint32_t c = AddNode("c", Cpu(2));
  manager_.Retry();
  ASSERT_EQ(reserved_.size(), 2u);
  for (const auto& [node, r] : reserved_) EXPECT_TRUE(node == b || node == c);
  AnswerAll(spec.id, true);
  EXPECT_EQ(Info(spec.id).state, State::kCreated);
}

TEST_F(PlacementGroupsTest, NodeDeathWhileReservingCountsAsRefusal) {
  uint32_t a = AddNode("a", Cpu(2));
  AddNode("b", Cpu(2));
  auto spec = Spec(PlacementStrategy::kStrictSpread, {Cpu(1), Cpu(1)});
  ASSERT_TRUE(manager_.Create(spec).ok());
  ASSERT_EQ(reserved_.size(), 2u);
  auto asked = reserved_;
  reserved_.clear();
  nodes_.MarkDead(a, "killed");
  manager_.OnNodeDead(a);
  EXPECT_EQ(Info(spec.id).state, State::kPending) << "still waiting for the other node's answer";
  for (const auto& [node, r] : asked) {
    if (node != a) manager_.OnReserved(node, protocol::BundlesReserved{spec.id, true, ""});
  }
  EXPECT_EQ(Info(spec.id).state, State::kPending);
  ASSERT_EQ(released_.size(), 1u) << "the surviving node's bundle goes back";
  EXPECT_EQ(released_[0], std::make_pair(spec.id, false));
}

TEST_F(PlacementGroupsTest, JobEndRemovesItsGroupsButNotDetachedOnes) {
  AddNode("a", Cpu(8));
  auto mine = Spec(PlacementStrategy::kPack, {Cpu(1)}, 1);
  mine.job_id = 7;
  auto detached = Spec(PlacementStrategy::kPack, {Cpu(1)}, 2);
  detached.job_id = 7;
  detached.detached = true;
  auto other = Spec(PlacementStrategy::kPack, {Cpu(1)}, 3);
  other.job_id = 8;
  for (const auto& s : {mine, detached, other}) ASSERT_TRUE(manager_.Create(s).ok());
  manager_.OnJobEnded(7);
  EXPECT_EQ(Info(mine.id).state, State::kRemoved);
  EXPECT_NE(Info(detached.id).state, State::kRemoved);
  EXPECT_NE(Info(other.id).state, State::kRemoved);
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0].first, mine.id);
}

TEST_F(PlacementGroupsTest, AnswersForUnknownGroupsAreIgnored) {
  AddNode("a", Cpu(2));
  manager_.OnReserved(1, protocol::BundlesReserved{ObjectID::Make(5, 5, 5), true, ""});
  manager_.OnNodeDead(1);
  manager_.OnJobEnded(123);
  protocol::PlacementGroupQuery all;
  EXPECT_TRUE(manager_.Query(all).empty());
}

}  // namespace
}  // namespace quanta
