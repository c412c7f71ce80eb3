// Unit tests for control/job_table.h: status transitions and times, node death failing the
// jobs of its drivers, and the bound on finished jobs kept (the newest stay).
#include "control/job_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace quanta {
namespace {

using protocol::JobInfo;
using protocol::JobStatus;

JobInfo Job(uint64_t id, uint32_t node, uint64_t start_ms) {
  JobInfo j;
  j.job_id = id;
  j.node_index = node;
  j.driver_pid = 1234;
  j.entrypoint = "python script.py";
  j.start_time_ms = start_ms;
  return j;
}

const JobInfo* Get(const std::vector<JobInfo>& all, uint64_t id) {
  auto it = std::find_if(all.begin(), all.end(), [&](const JobInfo& j) { return j.job_id == id; });
  return it == all.end() ? nullptr : &*it;
}

TEST(JobTable, StartedThenSucceeded) {
  JobTable t;
  t.Started(Job(1, 1, 1000));
  auto all = t.All();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].status, JobStatus::kRunning);
  EXPECT_FALSE(all[0].finished());
  EXPECT_EQ(all[0].start_time_ms, 1000u);
  EXPECT_EQ(all[0].end_time_ms, 0u);
  EXPECT_EQ(all[0].entrypoint, "python script.py");

  t.Finished(1, 5000);
  all = t.All();
  EXPECT_EQ(all[0].status, JobStatus::kSucceeded);
  EXPECT_EQ(all[0].end_time_ms, 5000u);
  EXPECT_EQ(all[0].start_time_ms, 1000u);
}

TEST(JobTable, FinishedIsFinal) {
  JobTable t;
  t.Started(Job(1, 1, 10));
  t.Finished(1, 20, /*failed=*/true);
  t.Finished(1, 30);  // a later, different report changes nothing
  auto j = t.All()[0];
  EXPECT_EQ(j.status, JobStatus::kFailed);
  EXPECT_EQ(j.end_time_ms, 20u);
}

TEST(JobTable, UnknownJobIsIgnored) {
  JobTable t;
  t.Finished(42, 100);
  EXPECT_TRUE(t.All().empty());
  EXPECT_TRUE(t.OnNodeDead(3, 100).empty());
}

TEST(JobTable, NodeDeathFailsItsRunningJobsOnly) {
  JobTable t;
  t.Started(Job(1, 1, 10));
  t.Started(Job(2, 2, 10));
  t.Started(Job(3, 2, 10));
  t.Started(Job(4, 2, 10));
  t.Finished(4, 50);  // finished before the node died: stays succeeded
  auto failed = t.OnNodeDead(2, 100);
  std::sort(failed.begin(), failed.end());
  EXPECT_EQ(failed, (std::vector<uint64_t>{2, 3}));
  auto all = t.All();
  EXPECT_EQ(Get(all, 1)->status, JobStatus::kRunning);
  EXPECT_EQ(Get(all, 2)->status, JobStatus::kFailed);
  EXPECT_EQ(Get(all, 2)->end_time_ms, 100u);
  EXPECT_EQ(Get(all, 3)->status, JobStatus::kFailed);
  EXPECT_EQ(Get(all, 4)->status, JobStatus::kSucceeded);
  EXPECT_EQ(Get(all, 4)->end_time_ms, 50u);
  EXPECT_TRUE(t.OnNodeDead(2, 200).empty()) << "a second report fails nothing more";
}

TEST(JobTable, KeepsTheNewestTenThousandFinishedAndEveryRunningJob) {
  JobTable t;
  const uint64_t kKeep = 10000;
  // Job ids are driver client ids: node index in the high 32 bits. Node 2's drivers (higher
  // ids) finish first; the one driver of node 1 finishes last and is the newest.
  t.Started(Job(1ull << 32 | 1, 1, 0));
  t.Started(Job(1ull << 32 | 2, 1, 0));  // still running at the end
  for (uint64_t i = 0; i < kKeep; ++i) t.Started(Job(2ull << 32 | (i + 1), 2, i));
  for (uint64_t i = 0; i < kKeep; ++i) t.Finished(2ull << 32 | (i + 1), 1000 + i);
  EXPECT_EQ(t.All().size(), kKeep + 2);
  t.Finished(1ull << 32 | 1, 999999);
  auto all = t.All();
  EXPECT_EQ(all.size(), kKeep + 1) << "one finished job over the bound is dropped";
  ASSERT_NE(Get(all, 1ull << 32 | 1), nullptr) << "the job that finished last is the newest and must stay";
  EXPECT_EQ(Get(all, 2ull << 32 | 1), nullptr) << "the job that finished first goes";
  ASSERT_NE(Get(all, 1ull << 32 | 2), nullptr) << "running jobs are never dropped";
  EXPECT_EQ(Get(all, 1ull << 32 | 2)->status, JobStatus::kRunning);
}

TEST(JobTable, AnIdStartedAgainAfterFinishingIsNotDroppedAsFinished) {
  JobTable t;
  t.Started(Job(1, 1, 0));
  t.Finished(1, 10);
  t.Started(Job(1, 1, 20));  // the same id running again
  for (uint64_t i = 0; i < 10000; ++i) {
    t.Started(Job(100 + i, 2, 0));
    t.Finished(100 + i, 30 + i);
  }
  auto all = t.All();
  ASSERT_NE(Get(all, 1), nullptr);
  EXPECT_EQ(Get(all, 1)->status, JobStatus::kRunning);
  EXPECT_EQ(all.size(), 10001u);
}

}  // namespace
}  // namespace quanta
