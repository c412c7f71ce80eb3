// Unit tests for control/node_table.h: joining, rejoining under an index, incarnations,
// heartbeat silence, death (final), and resource reports, including unknown and bad input.
#include "control/node_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::NodeInfo;
using Clock = NodeTable::Clock;

NodeInfo Info(const std::string& id, int64_t cpus = 4) {
  NodeInfo n;
  n.node_id = id;
  n.address = "10.0.0.1";
  n.port = 7000;
  n.total = {{"CPU", cpus * protocol::kResourceUnit}};
  n.available = n.total;
  return n;
}

TEST(NodeTable, RegisterAssignsFreshIndicesAndIncarnations) {
  NodeTable t;
  auto now = Clock::now();
  auto a = t.Register(Info("aaaa"), now);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = t.Register(Info("bbbb"), now);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a.value()->node_index, 1u);
  EXPECT_EQ(b.value()->node_index, 2u);
  EXPECT_NE(a.value()->incarnation, 0u);
  EXPECT_NE(a.value()->incarnation, b.value()->incarnation);
  EXPECT_TRUE(a.value()->alive);
  EXPECT_EQ(t.num_alive(), 2u);
  ASSERT_NE(t.FindById("bbbb"), nullptr);
  EXPECT_EQ(t.FindById("bbbb")->node_index, 2u);
  EXPECT_EQ(t.Find(1)->node_id, "aaaa");
}

TEST(NodeTable, RegisterIgnoresWhatTheNodeClaimsForServerFields) {
  NodeTable t;
  NodeInfo n = Info("cccc");
  n.alive = false;
  n.incarnation = 99;
  n.death_reason = "forged";
  auto r = t.Register(n, Clock::now());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.value()->alive);
  EXPECT_NE(r.value()->incarnation, 99u);
  EXPECT_TRUE(r.value()->death_reason.empty());
}

TEST(NodeTable, RefusesBadAndDuplicateIds) {
  NodeTable t;
  auto now = Clock::now();
  auto empty = t.Register(Info(""), now);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  auto too_long = t.Register(Info(std::string(65, 'x')), now);
  ASSERT_FALSE(too_long.ok());
  EXPECT_TRUE(t.Register(Info(std::string(64, 'x')), now).ok());  // the limit itself is fine

  ASSERT_TRUE(t.Register(Info("dup"), now).ok());
  auto again = t.Register(Info("dup"), now);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already registered"), std::string::npos) << again.status().message();
  EXPECT_EQ(t.num_alive(), 2u);  // the refusal added nothing
  EXPECT_EQ(t.All().size(), 2u);
}

TEST(NodeTable, RejoinKeepsIndexAndIncarnationAndUpdatesInfo) {
  NodeTable t;
  auto now = Clock::now();
  auto first = t.Register(Info("node-a", 4), now);
  ASSERT_TRUE(first.ok());
  uint32_t index = first.value()->node_index;
  uint64_t incarnation = first.value()->incarnation;
  ASSERT_TRUE(t.Register(Info("node-b"), now).ok());

  NodeInfo again = Info("node-a", 8);
  again.node_index = index;
  again.port = 7100;
  auto r = t.Register(again, now + 1s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value()->node_index, index);
  EXPECT_EQ(r.value()->incarnation, incarnation);
  EXPECT_EQ(r.value()->port, 7100u);
  EXPECT_EQ(t.Find(index)->total, again.total);
  EXPECT_EQ(t.num_alive(), 2u);
  // Rejoining counts as being heard from.
  EXPECT_TRUE(t.Silent(now + 3500ms, 3000ms).size() == 1);  // node-b only
  EXPECT_EQ(t.Silent(now + 3500ms, 3000ms)[0], t.FindById("node-b")->node_index);
}

TEST(NodeTable, RejoinUnderUnknownOrForeignIndexIsRefused) {
  NodeTable t;
  auto now = Clock::now();
  ASSERT_TRUE(t.Register(Info("node-a"), now).ok());
  NodeInfo unknown = Info("node-x");
  unknown.node_index = 42;
  auto r = t.Register(unknown, now);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("index 42"), std::string::npos) << r.status().message();

  // Index 1 exists, but belongs to another node id: no taking over someone else's index.
  NodeInfo thief = Info("node-b");
  thief.node_index = 1;
  auto s = t.Register(thief, now);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(t.Find(1)->node_id, "node-a");
}

TEST(NodeTable, DeadIsFinal) {
  NodeTable t;
  auto now = Clock::now();
  auto a = t.Register(Info("node-a"), now);
  ASSERT_TRUE(a.ok());
  uint32_t index = a.value()->node_index;
  EXPECT_TRUE(t.MarkDead(index, "connection closed"));
  EXPECT_FALSE(t.MarkDead(index, "again")) << "second death must report it was already dead";
  EXPECT_EQ(t.Find(index)->death_reason, "connection closed");
  EXPECT_FALSE(t.Find(index)->alive);
  EXPECT_TRUE(t.Find(index)->available.empty());
  EXPECT_EQ(t.num_alive(), 0u);

  // A rejoin under the dead index is refused with the reason and what to do.
  NodeInfo again = Info("node-a");
  again.node_index = index;
  auto r = t.Register(again, now);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("declared dead"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("connection closed"), std::string::npos);
  EXPECT_FALSE(t.Find(index)->alive);

  // A new node gets a new index; the dead one's is never reused.
  auto b = t.Register(Info("node-b"), now);
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b.value()->node_index, index);
  EXPECT_NE(b.value()->incarnation, a.value()->incarnation);
  // Dead nodes stay listed.
  EXPECT_EQ(t.All().size(), 2u);
}

TEST(NodeTable, MarkDeadOfUnknownNodeIsFalse) {
  NodeTable t;
  EXPECT_FALSE(t.MarkDead(7, "no such node"));
  EXPECT_EQ(t.Find(7), nullptr);
  EXPECT_EQ(t.FindById("nope"), nullptr);
}

TEST(NodeTable, SilentNodesAfterTimeout) {
  NodeTable t;
  auto t0 = Clock::now();
  uint32_t a = t.Register(Info("a"), t0).value()->node_index;
  uint32_t b = t.Register(Info("b"), t0).value()->node_index;
  uint32_t c = t.Register(Info("c"), t0).value()->node_index;
  EXPECT_TRUE(t.Silent(t0 + 3000ms, 3000ms).empty()) << "exactly at the timeout is not yet silent";
  t.Heard(b, t0 + 2000ms);
  t.Heard(999, t0 + 2000ms);  // unknown: ignored
  auto silent = t.Silent(t0 + 4000ms, 3000ms);
  ASSERT_EQ(silent.size(), 2u);
  EXPECT_EQ(silent[0], a);
  EXPECT_EQ(silent[1], c);
  // A dead node is never reported silent.
  t.MarkDead(a, "timeout");
  silent = t.Silent(t0 + 10s, 3000ms);
  EXPECT_EQ(silent, (std::vector<uint32_t>{b, c}));
}

TEST(NodeTable, ResourceReports) {
  NodeTable t;
  uint32_t a = t.Register(Info("a", 4), Clock::now()).value()->node_index;
  protocol::ResourceMap avail = {{"CPU", 1 * protocol::kResourceUnit}};
  // Empty total: keep the known total.
  EXPECT_TRUE(t.UpdateResources(a, avail, {}));
  EXPECT_EQ(t.Find(a)->available, avail);
  EXPECT_EQ(t.Find(a)->total, (protocol::ResourceMap{{"CPU", 4 * protocol::kResourceUnit}}));
  // A new total (placement-group bundles) replaces it.
  protocol::ResourceMap total = {{"CPU", 2 * protocol::kResourceUnit}, {"CPU_group_abc", 2 * protocol::kResourceUnit}};
  EXPECT_TRUE(t.UpdateResources(a, {}, total));
  EXPECT_TRUE(t.Find(a)->available.empty()) << "nothing free is a valid report";
  EXPECT_EQ(t.Find(a)->total, total);
  // Unknown and dead nodes are refused.
  EXPECT_FALSE(t.UpdateResources(77, avail, total));
  t.MarkDead(a, "gone");
  EXPECT_FALSE(t.UpdateResources(a, avail, total));
  EXPECT_TRUE(t.Find(a)->available.empty()) << "a dead node's resources stay cleared";
}

}  // namespace
}  // namespace quanta
