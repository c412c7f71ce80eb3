// Unit tests for node/cluster_view.h: node-table and resource-view updates, the added/dead
// events (once each, dead is final), and the snapshot with this node's live entry.
#include "node/cluster_view.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "scheduler/resource_set.h"

namespace quanta {
namespace {

using protocol::NodeInfo;
constexpr int64_t kU = protocol::kResourceUnit;

NodeInfo Node(uint32_t index, bool alive = true, int64_t cpus = 4) {
  NodeInfo n;
  n.node_index = index;
  n.node_id = "node-" + std::to_string(index);
  n.alive = alive;
  n.total = {{"CPU", cpus * kU}};
  n.available = n.total;
  if (!alive) n.death_reason = "test";
  return n;
}

class ClusterViewTest : public ::testing::Test {
 protected:
  ClusterView view_{[this](const NodeInfo& n) { added_.push_back(n.node_index); },
                    [this](const NodeInfo& n) { dead_.push_back(n.node_index); }};
  std::vector<uint32_t> added_, dead_;
};

TEST_F(ClusterViewTest, AddedOnceThenDeadOnce) {
  view_.ApplyNodeTable({true, {Node(1), Node(2)}});
  EXPECT_EQ(added_, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(view_.IsAlive(1));
  // The same table again (a full resend) announces nothing new.
  view_.ApplyNodeTable({true, {Node(1), Node(2)}});
  EXPECT_EQ(added_.size(), 2u);
  view_.ApplyNodeTable({false, {Node(2, false)}});
  EXPECT_EQ(dead_, (std::vector<uint32_t>{2}));
  EXPECT_FALSE(view_.IsAlive(2));
  EXPECT_EQ(view_.Find(2)->death_reason, "test");
  view_.ApplyNodeTable({false, {Node(2, false)}});
  EXPECT_EQ(dead_.size(), 1u) << "death is announced once";
}

TEST_F(ClusterViewTest, DeadIsFinal) {
  view_.ApplyNodeTable({false, {Node(3)}});
  view_.ApplyNodeTable({false, {Node(3, false)}});
  // A stale "alive" entry (an older broadcast arriving late) must not revive it.
  view_.ApplyNodeTable({true, {Node(3, true, 16)}});
  EXPECT_FALSE(view_.IsAlive(3));
  EXPECT_EQ(added_, (std::vector<uint32_t>{3}));
  EXPECT_EQ(ResourceSet(view_.Find(3)->total).Get("CPU"), 4 * kU) << "the dead entry is not overwritten";
}

TEST_F(ClusterViewTest, ANodeFirstSeenDeadIsAnnouncedDead) {
  view_.ApplyNodeTable({true, {Node(4, false)}});
  EXPECT_TRUE(added_.empty());
  EXPECT_EQ(dead_, (std::vector<uint32_t>{4}));
  EXPECT_EQ(view_.size(), 1u);
}

TEST_F(ClusterViewTest, UnknownNodesAreNotAlive) {
  EXPECT_EQ(view_.Find(9), nullptr);
  EXPECT_FALSE(view_.IsAlive(9));
  EXPECT_FALSE(view_.IsAlive(0));
}

TEST_F(ClusterViewTest, ResourceViewUpdatesAliveNodesOnly) {
  int calls = 0;
  view_.set_on_resources([&] { ++calls; });
  view_.ApplyNodeTable({true, {Node(1), Node(2, false)}});
  protocol::ResourceView rv;
  rv.nodes.push_back({1, {{"CPU", 1 * kU}}, {{"CPU", 4 * kU}, {"GPU", 1 * kU}}});
  rv.nodes.push_back({2, {{"CPU", 9 * kU}}, {{"CPU", 9 * kU}}});  // dead: ignored
  rv.nodes.push_back({7, {{"CPU", 9 * kU}}, {{"CPU", 9 * kU}}});  // unknown: ignored
  view_.ApplyResourceView(rv);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ResourceSet(view_.Find(1)->available).Get("CPU"), 1 * kU);
  EXPECT_EQ(ResourceSet(view_.Find(1)->total).Get("GPU"), 1 * kU);
  EXPECT_TRUE(view_.Find(2)->available == Node(2).available);
  EXPECT_EQ(view_.Find(7), nullptr) << "a resource report does not invent nodes";
}

TEST_F(ClusterViewTest, ForEachAliveSkipsTheDead) {
  view_.ApplyNodeTable({true, {Node(1), Node(2, false), Node(3)}});
  std::vector<uint32_t> seen;
  view_.ForEachAlive([&](const NodeInfo& n) { seen.push_back(n.node_index); });
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 3}));
}

TEST_F(ClusterViewTest, SnapshotReplacesTheLocalEntry) {
  view_.ApplyNodeTable({true, {Node(1), Node(2), Node(3, false)}});
  NodeInfo local = Node(2, true, 4);
  local.available = {{"CPU", 0}};
  auto snap = view_.Snapshot(local);
  ASSERT_EQ(snap.size(), 3u) << "dead nodes are listed too";
  EXPECT_EQ(snap[1].node_index, 2u);
  EXPECT_EQ(snap[1].available, local.available);
  EXPECT_EQ(snap[0].available, Node(1).available);
  EXPECT_FALSE(snap[2].alive);
  // Before the table arrives, the snapshot is this node alone.
  ClusterView empty{nullptr, nullptr};
  auto alone = empty.Snapshot(local);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].node_index, 2u);
}

TEST_F(ClusterViewTest, NoCallbacksIsFine) {
  ClusterView quiet{nullptr, nullptr};
  quiet.ApplyNodeTable({true, {Node(1), Node(2, false)}});
  quiet.ApplyNodeTable({true, {Node(1, false)}});
  quiet.ApplyResourceView({});
  EXPECT_FALSE(quiet.IsAlive(1));
}

}  // namespace
}  // namespace quanta
