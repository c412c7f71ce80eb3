#include "node/task_events.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

using protocol::TaskEvent;
using protocol::TaskEventBatch;
using protocol::TaskEventKind;

// The batch as the head receives it (encoded from the buffer, decoded).
TaskEventBuffer::Sender Decoded(std::function<bool(const TaskEventBatch&)> f) {
  return [f](const TaskEventBuffer::Batch& view) {
    TaskEventBatch b;
    EXPECT_TRUE(protocol::DecodeValue(protocol::EncodeValue(view), &b).ok());
    return f(b);
  };
}

Task MakeTask(uint32_t seq, const std::string& name = "f") {
  Task t;
  t.spec.task_id = ObjectID::Make((uint64_t{1} << 32) | 1, seq, 0);
  t.spec.name = name;
  t.spec.job_id = 7;
  t.spec.resources = {{"CPU", protocol::kResourceUnit}};
  t.spec.max_retries = 3;
  t.retries_left = 3;
  return t;
}

std::vector<TaskEvent> FlushAll(TaskEventBuffer& buf, uint64_t* dropped = nullptr) {
  std::vector<TaskEvent> out;
  buf.Flush(Decoded([&](const TaskEventBatch& b) {
    out.insert(out.end(), b.events.begin(), b.events.end());
    if (dropped) *dropped = b.dropped;
    return true;
  }));
  return out;
}

TEST(TaskEventBuffer, ATaskBetweenTwoFlushesIsOneEntryWithEveryStage) {
  TaskEventBuffer buf({100, 10});
  buf.set_node(3);
  Task t = MakeTask(1, "mod.f");
  buf.Submitted(t);
  buf.Scheduled(t, 3);
  buf.Running(t, 4242, 99);
  protocol::ObjectValue error{protocol::ObjectKind::kWorkerCrashed, "the worker died", {}};
  buf.Ended(t, &error);
  EXPECT_EQ(buf.size(), 1u);
  EXPECT_EQ(buf.recorded(), 4u);
  auto e = FlushAll(buf);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, TaskEventKind::kFailed);
  EXPECT_EQ(e[0].node, 3u);
  EXPECT_EQ(e[0].placed_on, 3u);
  EXPECT_EQ(e[0].name, "mod.f");
  EXPECT_EQ(e[0].resources, t.spec.resources);
  EXPECT_EQ(e[0].job_id, 7u);
  EXPECT_EQ(e[0].worker_pid, 4242u);
  EXPECT_EQ(e[0].worker_id, 99u);
  EXPECT_EQ(e[0].error, "the worker died");
  EXPECT_EQ(e[0].error_kind, static_cast<uint8_t>(protocol::ObjectKind::kWorkerCrashed));
  EXPECT_GT(e[0].submitted_us, 1700000000000000);  // wall clock, microseconds
  EXPECT_LE(e[0].submitted_us, e[0].scheduled_us);
  EXPECT_LE(e[0].scheduled_us, e[0].running_us);
  EXPECT_LE(e[0].running_us, e[0].end_us);
  EXPECT_EQ(buf.size(), 0u);
}

TEST(TaskEventBuffer, StagesAfterAFlushGoInANewEntryAndAnotherAttemptInItsOwn) {
  TaskEventBuffer buf({100, 10});
  buf.set_node(1);
  Task t = MakeTask(1);
  buf.Submitted(t);
  buf.Running(t, 10, 11);
  ASSERT_EQ(FlushAll(buf).size(), 1u);
  buf.Ended(t, nullptr);  // the running entry was shipped: a new one, with the end only
  auto e = FlushAll(buf);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, TaskEventKind::kFinished);
  EXPECT_EQ(e[0].submitted_us, 0);
  EXPECT_NE(e[0].end_us, 0);
  // A retry (one retry used) is attempt 1, in an entry of its own even before a flush.
  Task r = MakeTask(2);
  buf.Running(r, 10, 11);
  r.retries_left = 2;
  buf.Running(r, 12, 13);
  e = FlushAll(buf);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].attempt, 0u);
  EXPECT_EQ(e[1].attempt, 1u);
  EXPECT_EQ(e[1].worker_pid, 12u);
}

TEST(TaskEventBuffer, ATaskErrorKeepsTheWorkersTracebackAndLongTextIsClipped) {
  TaskEventBuffer buf({100, 10});
  protocol::ObjectValue raised{protocol::ObjectKind::kTaskError, std::string("\x80\x05pickle", 8), {}};
  Task a = MakeTask(1), b = MakeTask(2), c = MakeTask(3);
  a.error_text = "Traceback: ValueError: boom";
  buf.Ended(a, &raised);
  buf.Ended(b, &raised);  // no text sent: no pickle bytes either
  c.error_text = std::string(100000, 'x') + "ValueError: the last line";
  buf.Ended(c, &raised);
  auto got = FlushAll(buf);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].error, "Traceback: ValueError: boom");
  EXPECT_EQ(got[1].error.find("pickle"), std::string::npos);
  EXPECT_LE(got[2].error.size(), TaskEventBuffer::kMaxErrorBytes + 64);
  EXPECT_NE(got[2].error.find("ValueError: the last line"), std::string::npos);
}

TEST(TaskEventBuffer, FullBufferDropsTheOldestAndCountsThem) {
  TaskEventBuffer buf({5, 100});
  std::vector<Task> tasks;
  for (uint32_t i = 1; i <= 12; ++i) tasks.push_back(MakeTask(i));
  for (auto& t : tasks) buf.Submitted(t);
  EXPECT_EQ(buf.size(), 5u);
  EXPECT_EQ(buf.dropped(), 7u);
  buf.Running(tasks[0], 1, 1);  // its entry was dropped: a new one (dropping the next oldest)
  EXPECT_EQ(buf.dropped(), 8u);
  uint64_t dropped = 0;
  auto e = FlushAll(buf, &dropped);
  EXPECT_EQ(dropped, 8u);
  ASSERT_EQ(e.size(), 5u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(e[i].task_id.Sequence(), 9 + i);  // the newest, in order
  EXPECT_EQ(e[4].task_id.Sequence(), 1u);
  EXPECT_EQ(e[4].kind, TaskEventKind::kRunning);
}

TEST(TaskEventBuffer, OrderIsKeptAcrossPartialFlushes) {
  TaskEventBuffer buf({1000, 2});
  std::vector<uint32_t> seen;
  int budget = 0;  // batches the sender takes before it fails (the head went away)
  auto take = Decoded([&](const TaskEventBatch& b) {
    if (budget-- <= 0) return false;
    for (const auto& e : b.events) seen.push_back(e.task_id.Sequence());
    return true;
  });
  std::vector<Task> tasks;
  for (uint32_t i = 1; i <= 200; ++i) tasks.push_back(MakeTask(i));
  uint32_t next = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 1 + round % 4 && next < tasks.size(); ++i) buf.Submitted(tasks[next++]);
    budget = 1;
    buf.Flush(take);
  }
  budget = 1000;
  buf.Flush(take);
  EXPECT_EQ(buf.dropped(), 0u);
  ASSERT_EQ(seen.size(), next);
  for (uint32_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
}

TEST(TaskEventBuffer, BatchesAreBoundedAndAFailedSendKeepsTheEntries) {
  TaskEventBuffer buf({100, 4});
  std::vector<Task> tasks;
  for (uint32_t i = 1; i <= 10; ++i) tasks.push_back(MakeTask(i));
  for (auto& t : tasks) buf.Submitted(t);
  EXPECT_TRUE(buf.batch_ready());
  EXPECT_EQ(buf.Flush(Decoded([](const TaskEventBatch&) { return false; })), 0u);  // head unreachable
  EXPECT_EQ(buf.size(), 10u);
  buf.Running(tasks[9], 5, 5);  // still waiting: updated in place
  EXPECT_EQ(buf.size(), 10u);
  std::vector<size_t> sizes;
  std::vector<TaskEvent> all;
  buf.Flush(Decoded([&](const TaskEventBatch& b) {
    sizes.push_back(b.events.size());
    all.insert(all.end(), b.events.begin(), b.events.end());
    return true;
  }));
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 4, 2}));
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all.front().task_id.Sequence(), 1u);
  EXPECT_EQ(all.back().kind, TaskEventKind::kRunning);
  EXPECT_EQ(buf.Flush(Decoded([](const TaskEventBatch&) { return true; })), 0u);
}

TEST(TaskEventBuffer, CapacityZeroRecordsNothing) {
  TaskEventBuffer buf({0, 10});
  EXPECT_FALSE(buf.enabled());
  Task t = MakeTask(1);
  buf.Submitted(t);
  EXPECT_EQ(buf.size(), 0u);
  EXPECT_EQ(buf.recorded(), 0u);
}

TEST(TaskEventBuffer, TransfersGoWithTheNextBatchAndAreBounded) {
  TaskEventBuffer buf({100, 10});
  buf.set_node(2);
  ObjectID obj = ObjectID::Make((uint64_t{1} << 32) | 1, 9, 1);
  buf.Transferred(protocol::TransferEvent{obj, 20 << 20, 1, 2, 100, 250});
  std::vector<protocol::TransferEvent> got;
  buf.Flush(Decoded([&](const TaskEventBatch& b) {  // no task entries: the transfer goes alone
    EXPECT_TRUE(b.events.empty());
    got.insert(got.end(), b.transfers.begin(), b.transfers.end());
    return true;
  }));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].object_id, obj);
  EXPECT_EQ(got[0].bytes, uint64_t{20} << 20);
  EXPECT_EQ(got[0].from_node, 1u);
  EXPECT_EQ(got[0].to_node, 2u);
  EXPECT_EQ(got[0].end_us, 250);
  EXPECT_EQ(buf.transfers_waiting(), 0u);
  for (size_t i = 0; i < TaskEventBuffer::kMaxTransfers + 5; ++i) buf.Transferred(protocol::TransferEvent{obj, i, 1, 2, 1, 2});
  EXPECT_EQ(buf.transfers_waiting(), TaskEventBuffer::kMaxTransfers);
  EXPECT_EQ(buf.transfers_dropped(), 5u);
  // A send that fails keeps them; the next one takes them with the first batch only.
  EXPECT_EQ(buf.Flush(Decoded([](const TaskEventBatch&) { return false; })), 0u);
  EXPECT_EQ(buf.transfers_waiting(), TaskEventBuffer::kMaxTransfers);
  std::vector<Task> tasks;
  for (uint32_t i = 1; i <= 25; ++i) tasks.push_back(MakeTask(i));
  for (auto& t : tasks) buf.Submitted(t);
  std::vector<size_t> per_batch;
  buf.Flush(Decoded([&](const TaskEventBatch& b) {
    per_batch.push_back(b.transfers.size());
    EXPECT_EQ(b.transfers_dropped, 5u);
    return true;
  }));
  EXPECT_EQ(per_batch, (std::vector<size_t>{TaskEventBuffer::kMaxTransfers, 0, 0}));
}

TEST(TaskEventBuffer, NamesAreInternedAndShippedAsText) {
  TaskEventBuffer buf({1000, 1000});
  std::vector<Task> tasks;
  for (uint32_t i = 1; i <= 300; ++i) tasks.push_back(MakeTask(i, i % 3 ? "mod.a_rather_long_function_name" : "mod.g"));
  Task actor_call = MakeTask(301, "Counter");
  actor_call.spec.kind = protocol::TaskKind::kActorMethod;
  actor_call.spec.method = "incr";
  tasks.push_back(actor_call);
  for (auto& t : tasks) buf.Submitted(t);
  auto e = FlushAll(buf);
  ASSERT_EQ(e.size(), 301u);
  EXPECT_EQ(e[0].name, "mod.a_rather_long_function_name");
  EXPECT_EQ(e[2].name, "mod.g");
  EXPECT_EQ(e[300].name, "Counter.incr");
  EXPECT_EQ(e[299].resources, tasks[299].spec.resources);
}

TEST(TaskEventBuffer, AttemptsCountRetriesAcrossNodes) {
  Task t = MakeTask(1);
  auto& spec = t.spec;
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
