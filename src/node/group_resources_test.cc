// Unit tests for node/group_resources.h over a real WorkerDispatcher (no workers started):
// a reserved bundle's resources leave the node's pool and come back under the group's names,
// refusals change nothing, returning restores the node exactly, and removal for good is told.
#include "node/group_resources.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/event_loop.h"
#include "node/client_registry.h"
#include "node/object_manager.h"
#include "node/worker_pool.h"

namespace quanta {
namespace {

constexpr int64_t kU = protocol::kResourceUnit;

ResourceSet NodeResources() {
  ResourceSet r;
  r.Set("CPU", 4 * kU);
  r.Set("GPU", 1 * kU);
  return r;
}

class GroupResourcesTest : public ::testing::Test {
 protected:
  GroupResourcesTest()
      : clients_(&loop_, 1, nullptr, nullptr),
        objects_(&clients_, nullptr, {}),
        pool_(&loop_, {}, nullptr, nullptr),
        dispatcher_(&loop_, {}, NodeResources(), &pool_, &tasks_, &objects_, &clients_, {}),
        groups_(&dispatcher_, [this](const std::string& hex) { removed_.push_back(hex); }) {}

  static protocol::BundleReservation Reservation(const ObjectID& g, std::vector<std::pair<uint32_t, protocol::ResourceMap>> b) {
    protocol::BundleReservation r;
    r.group = g;
    r.bundles = std::move(b);
    return r;
  }
  const ResourceSet& total() const { return dispatcher_.queue().total(); }
  const ResourceSet& available() const { return dispatcher_.queue().available(); }

  net::EventLoop loop_;
  ClientRegistry clients_;
  ObjectManager objects_;
  WorkerPool pool_;
  TaskTable tasks_;
  WorkerDispatcher dispatcher_;
  GroupResources groups_;
  std::vector<std::string> removed_;
};

TEST_F(GroupResourcesTest, BundleResourceNamesFollowRay) {
  ResourceSet bundle;
  bundle.Set("CPU", 2 * kU);
  bundle.Set("GPU", kU / 2);
  ResourceSet r = GroupResources::BundleResources("abc", 3, bundle);
  EXPECT_EQ(r.Get("CPU_group_3_abc"), 2 * kU);
  EXPECT_EQ(r.Get("CPU_group_abc"), 2 * kU);
  EXPECT_EQ(r.Get("GPU_group_3_abc"), kU / 2);
  EXPECT_EQ(r.Get("GPU_group_abc"), kU / 2);
  EXPECT_EQ(r.Get("bundle_group_3_abc"), kU);
  EXPECT_EQ(r.Get("bundle_group_abc"), kU);
  EXPECT_EQ(r.Get("CPU"), 0) << "the plain names are not part of it";
  EXPECT_EQ(r.amounts().size(), 6u);
}

TEST_F(GroupResourcesTest, ReserveMovesResourcesIntoTheGroup) {
  ObjectID g = ObjectID::Make(1, 1, ObjectID::kPutIndex);
  std::string hex = g.Hex();
  auto reply = groups_.Reserve(Reservation(g, {{0, {{"CPU", 1 * kU}}}, {1, {{"CPU", 2 * kU}, {"GPU", kU}}}}));
  ASSERT_TRUE(reply.ok) << reply.error;
  EXPECT_EQ(reply.group, g);
  EXPECT_EQ(available().Get("CPU"), 1 * kU);
  EXPECT_EQ(total().Get("CPU"), 1 * kU);
  EXPECT_EQ(available().Get("GPU"), 0);
  EXPECT_EQ(available().Get("CPU_group_0_" + hex), 1 * kU);
  EXPECT_EQ(available().Get("CPU_group_1_" + hex), 2 * kU);
  EXPECT_EQ(available().Get("CPU_group_" + hex), 3 * kU) << "the group-wide name sums its bundles";
  EXPECT_EQ(available().Get("GPU_group_1_" + hex), kU);
  EXPECT_EQ(available().Get("bundle_group_" + hex), 2 * kU);
  EXPECT_EQ(groups_.num_groups(), 1u);
  // A task of the group fits by ordinary matching.
  ResourceSet in_group;
  in_group.Set("CPU_group_1_" + hex, 2 * kU);
  EXPECT_TRUE(dispatcher_.queue().IsFeasible(in_group));
}

TEST_F(GroupResourcesTest, RefusalChangesNothing) {
  ObjectID g = ObjectID::Make(1, 1, ObjectID::kPutIndex);
  ResourceSet before_total = total(), before_available = available();
  auto reply = groups_.Reserve(Reservation(g, {{0, {{"CPU", 3 * kU}}}, {1, {{"CPU", 2 * kU}}}}));
  EXPECT_FALSE(reply.ok);
  EXPECT_NE(reply.error.find("CPU: 5"), std::string::npos) << reply.error;
  EXPECT_TRUE(total() == before_total);
  EXPECT_TRUE(available() == before_available);
  EXPECT_EQ(groups_.num_groups(), 0u);
  auto tpu = groups_.Reserve(Reservation(g, {{0, {{"TPU", kU}}}}));
  EXPECT_FALSE(tpu.ok) << "a resource this node does not have";
}

TEST_F(GroupResourcesTest, AReservationCannotUseWhatAnotherGroupHolds) {
  ObjectID g1 = ObjectID::Make(1, 1, ObjectID::kPutIndex), g2 = ObjectID::Make(1, 2, ObjectID::kPutIndex);
  ASSERT_TRUE(groups_.Reserve(Reservation(g1, {{0, {{"CPU", 3 * kU}}}})).ok);
  EXPECT_FALSE(groups_.Reserve(Reservation(g2, {{0, {{"CPU", 2 * kU}}}})).ok);
  EXPECT_TRUE(groups_.Reserve(Reservation(g2, {{0, {{"CPU", 1 * kU}}}})).ok);
  EXPECT_EQ(available().Get("CPU"), 0);
  EXPECT_EQ(groups_.num_groups(), 2u);
}

TEST_F(GroupResourcesTest, ReturnRestoresTheNodeExactly) {
  ObjectID g = ObjectID::Make(1, 1, ObjectID::kPutIndex);
  ResourceSet before_total = total(), before_available = available();
  ASSERT_TRUE(groups_.Reserve(Reservation(g, {{0, {{"CPU", 1 * kU}}}, {2, {{"GPU", kU}}}})).ok);
  // Bundles of one group can arrive in two reservations (after a partial failure elsewhere).
  ASSERT_TRUE(groups_.Reserve(Reservation(g, {{1, {{"CPU", 1 * kU}}}})).ok);
  protocol::BundleReservation ret;
  ret.group = g;
  groups_.Return(ret);
  EXPECT_TRUE(total() == before_total) << total().ToString();
  EXPECT_TRUE(available() == before_available) << available().ToString();
  EXPECT_EQ(groups_.num_groups(), 0u);
  EXPECT_TRUE(removed_.empty()) << "returned to be placed again, not removed";
  groups_.Return(ret);  // twice: nothing more to give back
  EXPECT_TRUE(total() == before_total);
}

TEST_F(GroupResourcesTest, RemovalForGoodIsToldEvenWithoutBundlesHere) {
  ObjectID here = ObjectID::Make(1, 1, ObjectID::kPutIndex), elsewhere = ObjectID::Make(1, 2, ObjectID::kPutIndex);
  ASSERT_TRUE(groups_.Reserve(Reservation(here, {{0, {{"CPU", 1 * kU}}}})).ok);
  protocol::BundleReservation r;
  r.group = here;
  r.removed = true;
  groups_.Return(r);
  r.group = elsewhere;  // its tasks may wait here for resources it will never have
  groups_.Return(r);
  EXPECT_EQ(removed_, (std::vector<std::string>{here.Hex(), elsewhere.Hex()}));
  EXPECT_EQ(available().Get("CPU"), 4 * kU);
}

}  // namespace
}  // namespace quanta
