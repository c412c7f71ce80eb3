#include "node/task_events.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

using protocol::TaskEvent;
using protocol::TaskEventBatch;
using protocol::TaskEventKind;

// The batch as the head receives it (encoded from the ring, decoded).
TaskEventBuffer::Sender Decoded(std::function<bool(const TaskEventBatch&)> f) {
  return [f](const TaskEventBuffer::Batch& view) {
    TaskEventBatch b;
    EXPECT_TRUE(protocol::DecodeValue(protocol::EncodeValue(view), &b).ok());
    return f(b);
  };
}

protocol::TaskSpec Spec(uint32_t seq, const std::string& name = "f") {
  protocol::TaskSpec s;
  s.task_id = ObjectID::Make((uint64_t{1} << 32) | 1, seq, 0);
  s.name = name;
  s.job_id = 7;
  s.resources = {{"CPU", protocol::kResourceUnit}};
  return s;
}

TEST(TaskEventBuffer, RecordsEveryStageWithItsFields) {
  TaskEventBuffer buf({100, 10});
  buf.set_node(3);
  auto spec = Spec(1, "mod.f");
  buf.Submitted(spec, 0);
  buf.Scheduled(spec, 0, 2);
  buf.Running(spec, 0, 4242, 99);
  protocol::ObjectValue error{protocol::ObjectKind::kWorkerCrashed, "the worker died", {}};
  buf.Ended(spec, 0, &error, "");
  std::vector<TaskEventBatch> sent;
  EXPECT_EQ(buf.Flush(Decoded([&](const TaskEventBatch& b) { sent.push_back(b); return true; })), 4u);
  ASSERT_EQ(sent.size(), 1u);
  const auto& e = sent[0].events;
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(sent[0].node, 3u);
  EXPECT_EQ(e[0].kind, TaskEventKind::kSubmitted);
  EXPECT_EQ(e[0].name, "mod.f");
  EXPECT_EQ(e[0].resources, spec.resources);
  EXPECT_EQ(e[0].job_id, 7u);
  EXPECT_EQ(e[1].kind, TaskEventKind::kScheduled);
  EXPECT_EQ(e[1].node, 2u);  // where it was placed
  EXPECT_EQ(e[2].kind, TaskEventKind::kRunning);
  EXPECT_EQ(e[2].worker_pid, 4242u);
  EXPECT_EQ(e[2].worker_id, 99u);
  EXPECT_EQ(e[2].node, 3u);
  EXPECT_EQ(e[3].kind, TaskEventKind::kFailed);
  EXPECT_EQ(e[3].error, "the worker died");
  EXPECT_EQ(e[3].error_kind, static_cast<uint8_t>(protocol::ObjectKind::kWorkerCrashed));
  for (size_t i = 1; i < e.size(); ++i) EXPECT_GE(e[i].time_us, e[i - 1].time_us);
  EXPECT_GT(e[0].time_us, 1700000000000000);  // wall clock, microseconds
  EXPECT_EQ(buf.size(), 0u);
}

TEST(TaskEventBuffer, ATaskErrorKeepsTheWorkersTracebackAndLongTextIsClipped) {
  TaskEventBuffer buf({100, 10});
  protocol::ObjectValue raised{protocol::ObjectKind::kTaskError, std::string("\x80\x05pickle", 8), {}};
  buf.Ended(Spec(1), 0, &raised, "Traceback: ValueError: boom");
  buf.Ended(Spec(2), 0, &raised, "");  // no text sent: no pickle bytes either
  std::string huge(100000, 'x');
  huge += "ValueError: the last line";
  buf.Ended(Spec(3), 0, &raised, huge);
  std::vector<TaskEvent> got;
  buf.Flush(Decoded([&](const TaskEventBatch& b) { got = b.events; return true; }));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].error, "Traceback: ValueError: boom");
  EXPECT_EQ(got[1].error.find("pickle"), std::string::npos);
  EXPECT_LE(got[2].error.size(), TaskEventBuffer::kMaxErrorBytes + 64);
  EXPECT_NE(got[2].error.find("ValueError: the last line"), std::string::npos);
}

TEST(TaskEventBuffer, FullBufferDropsTheOldestAndCountsThem) {
  TaskEventBuffer buf({5, 100});
  for (uint32_t i = 1; i <= 12; ++i) buf.Submitted(Spec(i), 0);
  EXPECT_EQ(buf.size(), 5u);
  EXPECT_EQ(buf.dropped(), 7u);
  std::vector<TaskEventBatch> sent;
  buf.Flush(Decoded([&](const TaskEventBatch& b) { sent.push_back(b); return true; }));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dropped, 7u);
  ASSERT_EQ(sent[0].events.size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(sent[0].events[i].task_id.Sequence(), 8 + i);  // the newest, in order
}

TEST(TaskEventBuffer, RingKeepsOrderAcrossWrapsAndGrowth) {
  TaskEventBuffer buf({6, 2});
  std::vector<uint32_t> seen;
  int budget = 0;  // batches the sender takes before it fails (the head went away)
  auto take = Decoded([&](const TaskEventBatch& b) {
    if (budget-- <= 0) return false;
    for (const auto& e : b.events) seen.push_back(e.task_id.Sequence());
    return true;
  });
  for (uint32_t i = 1; i <= 4; ++i) buf.Submitted(Spec(i), 0);
  budget = 1;
  EXPECT_EQ(buf.Flush(take), 2u);  // 1, 2 sent; 3, 4 wait in the middle of the ring
  for (uint32_t i = 5; i <= 7; ++i) buf.Submitted(Spec(i), 0);  // wraps, then grows past the wrap
  EXPECT_EQ(buf.size(), 5u);
  budget = 100;
  EXPECT_EQ(buf.Flush(take), 5u);
  // Many more rounds of partial flushes over a full ring.
  uint32_t next = 8;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 1 + round % 3; ++i) buf.Submitted(Spec(next++), 0);
    budget = 1;
    buf.Flush(take);
  }
  budget = 100;
  buf.Flush(take);
  EXPECT_EQ(buf.dropped(), 0u);
  ASSERT_EQ(seen.size(), next - 1);
  for (uint32_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
}

TEST(TaskEventBuffer, BatchesAreBoundedAndAFailedSendKeepsTheEvents) {
  TaskEventBuffer buf({100, 4});
  for (uint32_t i = 1; i <= 10; ++i) buf.Submitted(Spec(i), 0);
  EXPECT_TRUE(buf.batch_ready());
  EXPECT_EQ(buf.Flush(Decoded([](const TaskEventBatch&) { return false; })), 0u);  // head unreachable
  EXPECT_EQ(buf.size(), 10u);
  std::vector<size_t> sizes;
  std::vector<uint32_t> seqs;
  buf.Flush(Decoded([&](const TaskEventBatch& b) {
    sizes.push_back(b.events.size());
    for (const auto& e : b.events) seqs.push_back(e.task_id.Sequence());
    return true;
  }));
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 4, 2}));
  ASSERT_EQ(seqs.size(), 10u);
  EXPECT_EQ(seqs.front(), 1u);
  EXPECT_EQ(seqs.back(), 10u);
  EXPECT_EQ(buf.Flush(Decoded([](const TaskEventBatch&) { return true; })), 0u);
}

TEST(TaskEventBuffer, CapacityZeroRecordsNothing) {
  TaskEventBuffer buf({0, 10});
  EXPECT_FALSE(buf.enabled());
  buf.Submitted(Spec(1), 0);
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_EQ(buf.recorded(), 0u);
}

TEST(TaskEventBuffer, AttemptsCountRetriesAcrossNodes) {
  auto spec = Spec(1);
  spec.max_retries = 3;
  EXPECT_EQ(TaskAttempt(spec, 3, false), 0u);
  EXPECT_EQ(TaskAttempt(spec, 1, false), 2u);
  spec.attempt = 2;  // the owner forwarded its third attempt
  EXPECT_EQ(TaskAttempt(spec, 3, true), 2u);
  EXPECT_EQ(TaskAttempt(spec, 2, true), 3u);  // and the running node retried it once more
  spec.max_retries = -1;  // retried forever: not counted
  EXPECT_EQ(TaskAttempt(spec, -1, false), 0u);
}

}  // namespace
}  // namespace quanta
