// Unit tests for scheduler/gpu_instances.h and the GPU checks of scheduler/task_queue.h.
#include "scheduler/gpu_instances.h"

#include <gtest/gtest.h>

#include <set>

#include "scheduler/task_queue.h"

namespace quanta {
namespace {

constexpr int64_t kUnit = protocol::kResourceUnit;

TEST(GpuInstances, WholeDemandsGetDistinctDevices) {
  GpuInstances g({"0", "1", "2"});
  auto a = g.Assign(kUnit);
  auto b = g.Assign(2 * kUnit);
  ASSERT_TRUE(a && b);
  std::set<std::string> ids;
  for (const auto& [id, share] : *a) {
    ids.insert(id);
    EXPECT_EQ(share, kUnit);
  }
  for (const auto& [id, share] : *b) {
    ids.insert(id);
    EXPECT_EQ(share, kUnit);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"0", "1", "2"}));
  EXPECT_FALSE(g.CanAssign(kUnit));
  g.Release(*a);
  auto c = g.Assign(kUnit);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *a);  // the device given back is the one handed out again
}

TEST(GpuInstances, FractionsShareOneDeviceAndLeaveWholeOnesFree) {
  GpuInstances g({"4", "7"});
  auto a = g.Assign(kUnit / 2);
  auto b = g.Assign(kUnit / 2);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].first, (*b)[0].first);  // packed onto the same device
  EXPECT_EQ((*a)[0].second, kUnit / 2);
  EXPECT_TRUE(g.CanAssign(kUnit));   // the other device is still whole
  EXPECT_FALSE(g.CanAssign(2 * kUnit));
  g.Release(*a);
  g.Release(*b);
  EXPECT_TRUE(g.CanAssign(2 * kUnit));
}

TEST(GpuInstances, FragmentedSharesDoNotFitALargerFraction) {
  GpuInstances g({"0", "1"});
  ASSERT_TRUE(g.Assign(6000));
  ASSERT_TRUE(g.Assign(6000));  // 0.4 left on each: 0.8 in total, but no device has 0.5
  EXPECT_FALSE(g.CanAssign(5000));
  EXPECT_TRUE(g.CanAssign(4000));
}

TEST(GpuInstances, NonWholeAmountsAboveOneAndZeroAreHandled) {
  GpuInstances g({"0", "1"});
  EXPECT_FALSE(g.Assign(15000));
  auto none = g.Assign(0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  g.Release({{"9", kUnit}});  // an id the node does not have: ignored
  EXPECT_EQ(g.free_share(0), kUnit);
}

TEST(TaskQueueGpus, AClassIsRunnableOnlyIfDevicesCanHoldIt) {
  ResourceSet total;
  total.Set("GPU", 2 * kUnit);
  total.Set("CPU", 4 * kUnit);
  TaskQueue q(total);
  ResourceSet frac;
  frac.Set("GPU", 6000);
  ResourceSet half;
  half.Set("GPU", 5000);
  q.Push(ObjectID::Make(1, 1, 0), frac);
  q.Push(ObjectID::Make(1, 2, 0), frac);
  for (int i = 0; i < 2; ++i) {
    auto t = q.PopRunnable();
    ASSERT_TRUE(t);
    EXPECT_EQ(t->second, frac);
    EXPECT_EQ(q.AssignGpus(t->second.Get("GPU")).size(), 1u);
  }
  q.Push(ObjectID::Make(1, 3, 0), half);
  // 0.8 GPU is free in total, but no single device has 0.5 left.
  EXPECT_EQ(q.available().Get("GPU"), 8000);
  EXPECT_FALSE(q.HasRunnable());
  EXPECT_FALSE(q.PopRunnable());
}

TEST(TaskQueueGpus, DefaultIdsAreZeroToN) {
  ResourceSet total;
  total.Set("GPU", 3 * kUnit);
  TaskQueue q(total);
  ASSERT_EQ(q.gpus().size(), 3u);
  auto a = q.AssignGpus(3 * kUnit);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].first, "0");
  EXPECT_EQ(a[2].first, "2");
}

TEST(TaskQueueGpus, PlacementGroupGpusComeFromTheSameDevices) {
  ResourceSet group;
  group.Set("GPU_group_0_abc", kUnit);
  group.Set("CPU_group_0_abc", kUnit);
  EXPECT_EQ(TaskQueue::GpuDemand(group), kUnit);
  ResourceSet any;
  any.Set("GPU_group_abc", kUnit / 2);
  any.Set("GPU", kUnit);
  EXPECT_EQ(TaskQueue::GpuDemand(any), kUnit + kUnit / 2);
  ResourceSet none;
  none.Set("CPU", kUnit);
  none.Set("GPUX", kUnit);
  EXPECT_EQ(TaskQueue::GpuDemand(none), 0);
  EXPECT_TRUE(TaskQueue::IsGpuName("GPU_group_1_abc"));
  EXPECT_FALSE(TaskQueue::IsGpuName("CPU_group_1_abc"));
}

}  // namespace
}  // namespace quanta
