// Unit tests for node/cluster_scheduler.h over a real ClusterView and TaskQueue: local first,
// spillback to free nodes (rotating, debited until the next report), SPREAD, node affinity
// (soft and hard), label selectors, locality by argument bytes, driver and dead nodes, and
// infeasible demands with their reasons.
#include "node/cluster_scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace quanta {
namespace {

using protocol::NodeInfo;
using protocol::SchedulingStrategy;
using Placement = ClusterScheduler::Placement;
constexpr int64_t kU = protocol::kResourceUnit;
constexpr uint32_t kLocal = 1;

ResourceSet Cpu(int64_t n) {
  ResourceSet r;
  r.Set("CPU", n * kU);
  return r;
}

NodeInfo Node(uint32_t index, protocol::ResourceMap total, protocol::Labels labels = {}) {
  NodeInfo n;
  n.node_index = index;
  n.node_id = "id-" + std::to_string(index);
  n.total = total;
  n.available = total;
  n.labels = std::move(labels);
  return n;
}

class ClusterSchedulerTest : public ::testing::Test {
 protected:
  ClusterSchedulerTest() : queue_(Cpu(2)), view_(nullptr, nullptr), scheduler_(&view_, &queue_) {
    view_.set_local_index(kLocal);
  }
  // Node 1 (this one): 2 CPUs. Nodes 2 and 3: 4 CPUs; node 3 has a GPU and a zone label.
  void ThreeNodes() {
    Apply({Node(1, {{"CPU", 2 * kU}}, {{"zone", "a"}}), Node(2, {{"CPU", 4 * kU}}, {{"zone", "b"}}),
           Node(3, {{"CPU", 4 * kU}, {"GPU", 1 * kU}}, {{"zone", "c"}, {"accel", "a100"}})});
  }
  void Apply(std::vector<NodeInfo> nodes) { view_.ApplyNodeTable({true, std::move(nodes)}); }
  void SetAvailable(uint32_t node, protocol::ResourceMap available) {
    protocol::ResourceView rv;
    rv.nodes.push_back({node, available, view_.Find(node)->total});
    view_.ApplyResourceView(rv);
    scheduler_.OnViewUpdated();
  }
  void LocalBusy() {
    ResourceSet all = queue_.available();  // a copy: Acquire changes the set it reads
    queue_.Acquire(all);
  }
  Placement Choose(const ResourceSet& demand, const SchedulingStrategy* s = nullptr,
                   std::vector<std::pair<uint32_t, uint64_t>> arg_bytes = {}) {
    ClusterScheduler::Request r;
    r.demand = &demand;
    r.strategy = s;
    r.arg_bytes = std::move(arg_bytes);
    return scheduler_.Choose(r);
  }
  static uint32_t Where(const Placement& p) { return p.kind == Placement::kLocal ? kLocal : p.node; }

  TaskQueue queue_;
  ClusterView view_;
  ClusterScheduler scheduler_;
};

TEST_F(ClusterSchedulerTest, BeforeTheNodeTableArrivesThisNodeIsTheCluster) {
  EXPECT_EQ(Choose(Cpu(1)).kind, Placement::kLocal);
  auto p = Choose(Cpu(8));
  EXPECT_EQ(p.kind, Placement::kInfeasible);
  EXPECT_NE(p.why.find("CPU: 8"), std::string::npos) << p.why;
}

TEST_F(ClusterSchedulerTest, LocalWhileItHasRoom) {
  ThreeNodes();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Choose(Cpu(1)).kind, Placement::kLocal);
  ResourceSet nothing;
  EXPECT_EQ(Choose(nothing).kind, Placement::kLocal) << "a task asking for nothing runs here";
}

TEST_F(ClusterSchedulerTest, SpillsToFreeNodesRotatingWhenLocalIsBusy) {
  ThreeNodes();
  LocalBusy();
  std::set<uint32_t> chosen;
  for (int i = 0; i < 4; ++i) {
    auto p = Choose(Cpu(1));
    ASSERT_EQ(p.kind, Placement::kRemote);
    chosen.insert(p.node);
  }
  EXPECT_EQ(chosen, (std::set<uint32_t>{2, 3})) << "a burst is spread over the free nodes";
}

TEST_F(ClusterSchedulerTest, QueuedTasksOfTheSameShapeCountAsBusy) {
  ThreeNodes();
  queue_.Push(ObjectID::Make(1, 1, 0), Cpu(1));  // one already waits here for a CPU
  EXPECT_EQ(Choose(Cpu(1)).kind, Placement::kRemote);
  EXPECT_EQ(Choose(Cpu(2)).kind, Placement::kLocal) << "another shape is not behind it";
}

TEST_F(ClusterSchedulerTest, WhatWasSentIsDebitedUntilTheNextReport) {
  ThreeNodes();
  LocalBusy();
  SetAvailable(3, {});  // node 3 is full: only node 2 (4 CPUs) has room
  for (int i = 0; i < 4; ++i) {
    auto p = Choose(Cpu(1));
    ASSERT_EQ(Where(p), 2u) << i;
    scheduler_.NoteSent(2, Cpu(1));
  }
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 0);
  EXPECT_EQ(Choose(Cpu(1)).kind, Placement::kLocal) << "nobody has room: it waits here";
  SetAvailable(2, {{"CPU", 4 * kU}});  // the report clears the debits
  EXPECT_EQ(Where(Choose(Cpu(1))), 2u);
}

TEST_F(ClusterSchedulerTest, HardAffinityToADeadNodeIsUnschedulableAndToAnUnknownOneInfeasible) {
  ThreeNodes();
  SchedulingStrategy hard;
  hard.kind = SchedulingStrategy::Kind::kNodeAffinity;
  hard.node_id = "id-2";
  EXPECT_EQ(Where(Choose(Cpu(1), &hard)), 2u);
  view_.ApplyNodeTable({false, {[] { NodeInfo n = Node(2, {{"CPU", 4 * kU}}); n.alive = false; return n; }()}});
  auto p = Choose(Cpu(1), &hard);
  EXPECT_EQ(p.kind, Placement::kUnschedulable);
  EXPECT_NE(p.why.find("id-2"), std::string::npos) << p.why;
  hard.node_id = "id-not-yet-seen";  // may be a node whose join has not reached this view yet
  EXPECT_EQ(Choose(Cpu(1), &hard).kind, Placement::kInfeasible);
  hard.soft = true;
  hard.node_id = "id-2";
  EXPECT_NE(Choose(Cpu(1), &hard).kind, Placement::kUnschedulable) << "soft goes elsewhere";
}

TEST_F(ClusterSchedulerTest, AFinishedTaskFreesItsResourcesBeforeTheNextReport) {
  ThreeNodes();
  SetAvailable(2, {{"CPU", 3 * kU}});  // a report taken while one task of ours ran there
  scheduler_.NoteReturned(2, Cpu(1));  // its result came back: that CPU is free again
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 4);
  scheduler_.NoteReturned(2, Cpu(1));  // never more than the node has
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 4);
  // Sent and finished before any report: the debit goes, the report's figure stands.
  SetAvailable(2, {{"CPU", 4 * kU}});
  scheduler_.NoteSent(2, Cpu(1));
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 3);
  scheduler_.NoteReturned(2, Cpu(1));
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 4);
  SetAvailable(2, {{"CPU", 2 * kU}});  // a report replaces the credits
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 2);
}

TEST_F(ClusterSchedulerTest, FreeSlots) {
  ThreeNodes();
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 4);
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(3)), 1);
  ResourceSet half;
  half.Set("CPU", kU / 2);
  EXPECT_EQ(scheduler_.FreeSlots(2, half), 8);
  ResourceSet gpu;
  gpu.Set("GPU", kU);
  EXPECT_EQ(scheduler_.FreeSlots(2, gpu), 0);
  EXPECT_EQ(scheduler_.FreeSlots(3, gpu), 1);
  EXPECT_EQ(scheduler_.FreeSlots(42, Cpu(1)), 0) << "unknown node";
  scheduler_.NoteSent(2, Cpu(6));  // more than it has: never negative slots
  EXPECT_EQ(scheduler_.FreeSlots(2, Cpu(1)), 0);
  view_.ApplyNodeTable({false, {[] { NodeInfo n = Node(3, {}); n.alive = false; return n; }()}});
  EXPECT_EQ(scheduler_.FreeSlots(3, gpu), 0) << "dead node";
}

TEST_F(ClusterSchedulerTest, NodesWithRoomMostFreeFirstExcludingLocalAndDrivers) {
  NodeInfo driver = Node(4, {{"CPU", 64 * kU}});
  driver.flags = NodeInfo::kDriverNode;
  Apply({Node(1, {{"CPU", 8 * kU}}), Node(2, {{"CPU", 2 * kU}}), Node(3, {{"CPU", 6 * kU}}), driver});
  EXPECT_EQ(scheduler_.NodesWithRoom(Cpu(1)), (std::vector<uint32_t>{3, 2}));
  EXPECT_EQ(scheduler_.NodesWithRoom(Cpu(3)), (std::vector<uint32_t>{3}));
  EXPECT_TRUE(scheduler_.NodesWithRoom(Cpu(7)).empty());
}

TEST_F(ClusterSchedulerTest, LocalInfeasibleGoesWhereItFitsEvenIfBusy) {
  ThreeNodes();
  SetAvailable(3, {});
  ResourceSet gpu;
  gpu.Set("GPU", kU);
  auto p = Choose(gpu);
  ASSERT_EQ(p.kind, Placement::kRemote);
  EXPECT_EQ(p.node, 3u) << "the only node with a GPU: it waits there";
}

TEST_F(ClusterSchedulerTest, InfeasibleEverywhere) {
  ThreeNodes();
  ResourceSet tpu;
  tpu.Set("TPU", kU);
  auto p = Choose(tpu);
  EXPECT_EQ(p.kind, Placement::kInfeasible);
  EXPECT_NE(p.why.find("TPU"), std::string::npos) << p.why;
  auto big = Choose(Cpu(5));
  EXPECT_EQ(big.kind, Placement::kInfeasible) << "more than any one node has, though the sum would do";
  EXPECT_NE(scheduler_.LargestNode().find("node 2"), std::string::npos) << scheduler_.LargestNode();
}

TEST_F(ClusterSchedulerTest, DriverAndDeadNodesNeverRunTasks) {
  NodeInfo driver = Node(2, {{"CPU", 64 * kU}});
  driver.flags = NodeInfo::kDriverNode;
  NodeInfo dead = Node(3, {{"CPU", 64 * kU}});
  dead.alive = false;
  Apply({Node(1, {{"CPU", 2 * kU}}), driver, dead});
  LocalBusy();
  EXPECT_EQ(Choose(Cpu(1)).kind, Placement::kLocal);
  EXPECT_EQ(Choose(Cpu(8)).kind, Placement::kInfeasible);
  EXPECT_EQ(scheduler_.LargestNode().find("node 2"), std::string::npos);
}

TEST_F(ClusterSchedulerTest, SpreadRotatesOverEveryCandidate) {
  ThreeNodes();
  SchedulingStrategy spread;
  spread.kind = SchedulingStrategy::Kind::kSpread;
  std::map<uint32_t, int> count;
  for (int i = 0; i < 9; ++i) ++count[Where(Choose(Cpu(1), &spread))];
  EXPECT_EQ(count.size(), 3u) << "SPREAD uses this node and both others";
  for (const auto& [node, n] : count) EXPECT_EQ(n, 3) << "node " << node;
}

TEST_F(ClusterSchedulerTest, SpreadSkipsBusyNodesButStillPlacesWhenAllAreBusy) {
  ThreeNodes();
  SchedulingStrategy spread;
  spread.kind = SchedulingStrategy::Kind::kSpread;
  LocalBusy();
  SetAvailable(2, {});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Where(Choose(Cpu(1), &spread)), 3u);
  SetAvailable(3, {});
  auto p = Choose(Cpu(1), &spread);
  EXPECT_NE(p.kind, Placement::kInfeasible) << "busy is not infeasible";
}

TEST_F(ClusterSchedulerTest, HardNodeAffinityOnlyThatNode) {
  ThreeNodes();
  SchedulingStrategy s;
  s.kind = SchedulingStrategy::Kind::kNodeAffinity;
  s.node_id = "id-2";
  s.soft = false;
  SetAvailable(2, {});  // busy: it waits there anyway
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Where(Choose(Cpu(1), &s)), 2u);
  s.node_id = "id-1";
  EXPECT_EQ(Choose(Cpu(1), &s).kind, Placement::kLocal);
  // A node that lacks the resources, or does not exist: infeasible, saying so.
  s.node_id = "id-2";
  auto gpu_there = Choose([] { ResourceSet r; r.Set("GPU", kU); return r; }(), &s);
  EXPECT_EQ(gpu_there.kind, Placement::kInfeasible);
  EXPECT_NE(gpu_there.why.find("soft=False"), std::string::npos) << gpu_there.why;
  s.node_id = "no-such-node";
  EXPECT_EQ(Choose(Cpu(1), &s).kind, Placement::kInfeasible);
}

TEST_F(ClusterSchedulerTest, SoftNodeAffinityPrefersThatNodeElseDefault) {
  ThreeNodes();
  SchedulingStrategy s;
  s.kind = SchedulingStrategy::Kind::kNodeAffinity;
  s.node_id = "id-3";
  s.soft = true;
  EXPECT_EQ(Where(Choose(Cpu(1), &s)), 3u) << "though this node is free";
  s.node_id = "gone";
  EXPECT_EQ(Choose(Cpu(1), &s).kind, Placement::kLocal) << "unknown node: default placement";
  s.node_id = "id-2";
  EXPECT_EQ(Where(Choose([] { ResourceSet r; r.Set("GPU", kU); return r; }(), &s)), 3u)
      << "the named node lacks a GPU: placed where one is";
}

TEST_F(ClusterSchedulerTest, LabelExpressions) {
  protocol::Labels l = {{"zone", "us-east"}, {"tier", ""}};
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "zone", "in:us-east,us-west"));
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "zone", "in:us-east"));
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "zone", "in:eu"));
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "zone", "in:us"));  // whole values only
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "zone", "!in:eu,ap"));
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "zone", "!in:us-east"));
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "zone", "exists"));
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "tier", "exists"));
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "gpu", "exists"));
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "gpu", "!exists"));
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "gpu", "in:a"));
  EXPECT_TRUE(ClusterScheduler::LabelMatches(l, "gpu", "!in:a")) << "a missing label is not in any set";
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "zone", "us-east")) << "malformed: no operator";
  EXPECT_FALSE(ClusterScheduler::LabelMatches(l, "zone", ""));
}

TEST_F(ClusterSchedulerTest, HardLabelsFilterAndSoftLabelsPrefer) {
  ThreeNodes();
  SchedulingStrategy s;
  s.kind = SchedulingStrategy::Kind::kNodeLabel;
  s.hard = {{"zone", "in:b,c"}};
  std::set<uint32_t> where;
  for (int i = 0; i < 6; ++i) where.insert(Where(Choose(Cpu(1), &s)));
  EXPECT_EQ(where.count(kLocal), 0u) << "zone a is excluded even though it is free";
  s.hard = {{"zone", "in:b,c"}, {"accel", "exists"}};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Where(Choose(Cpu(1), &s)), 3u);
  s.hard = {{"zone", "in:mars"}};
  auto p = Choose(Cpu(1), &s);
  EXPECT_EQ(p.kind, Placement::kInfeasible);
  EXPECT_NE(p.why.find("label"), std::string::npos) << p.why;

  SchedulingStrategy soft;
  soft.kind = SchedulingStrategy::Kind::kNodeLabel;
  soft.soft_labels = {{"zone", "in:b"}};
  EXPECT_EQ(Where(Choose(Cpu(1), &soft)), 2u) << "the preferred node is free";
  SetAvailable(2, {});
  EXPECT_EQ(Choose(Cpu(1), &soft).kind, Placement::kLocal) << "preferred node busy: default placement";
}

TEST_F(ClusterSchedulerTest, LargeArgumentsPullTheTaskToTheirNode) {
  ThreeNodes();
  const uint64_t big = ClusterScheduler::kLocalityBytes;
  EXPECT_EQ(Where(Choose(Cpu(1), nullptr, {{3, big}})), 3u) << "though this node is free";
  EXPECT_EQ(Where(Choose(Cpu(1), nullptr, {{2, big}, {3, 4 * big}})), 3u) << "most bytes win";
  EXPECT_EQ(Where(Choose(Cpu(1), nullptr, {{3, 4 * big}, {2, big}})), 3u) << "whatever the order";
  EXPECT_EQ(Choose(Cpu(1), nullptr, {{3, big - 1}}).kind, Placement::kLocal) << "small arguments do not count";
  EXPECT_EQ(Choose(Cpu(1), nullptr, {{kLocal, 8 * big}, {3, big}}).kind, Placement::kLocal);
  EXPECT_EQ(Choose(Cpu(1), nullptr, {{9, 8 * big}}).kind, Placement::kLocal) << "an unknown node";
  SetAvailable(3, {});
  EXPECT_EQ(Choose(Cpu(1), nullptr, {{3, 8 * big}}).kind, Placement::kLocal) << "its node is busy";
}

TEST_F(ClusterSchedulerTest, LocalityRespectsTheStrategyFilter) {
  ThreeNodes();
  SchedulingStrategy s;
  s.kind = SchedulingStrategy::Kind::kNodeLabel;
  s.hard = {{"zone", "in:a,b"}};
  EXPECT_NE(Where(Choose(Cpu(1), &s, {{3, 8 * ClusterScheduler::kLocalityBytes}})), 3u)
      << "the data's node is excluded by the label selector";
}

}  // namespace
}  // namespace quanta
