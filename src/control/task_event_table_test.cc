#include "control/task_event_table.h"

#include <gtest/gtest.h>

namespace quanta {
namespace {

using protocol::TaskEvent;
using protocol::TaskEventKind;

TaskID Tid(uint32_t seq) { return ObjectID::Make((uint64_t{1} << 32) | 1, seq, 0); }

TaskEvent Ev(uint32_t seq, TaskEventKind kind, uint32_t node = 1, uint32_t attempt = 0, int64_t t = 0) {
  TaskEvent e;
  e.task_id = Tid(seq);
  e.kind = kind;
  e.node = node;
  e.attempt = attempt;
  int64_t when = t ? t : 1000 * seq + static_cast<int64_t>(kind);
  switch (kind) {
    case TaskEventKind::kSubmitted: e.submitted_us = when; e.name = "f" + std::to_string(seq % 2); break;
    case TaskEventKind::kScheduled: e.scheduled_us = when; e.placed_on = node; break;
    case TaskEventKind::kRunning: e.running_us = when; break;
    case TaskEventKind::kFinished:
    case TaskEventKind::kFailed: e.end_us = when; break;
  }
  e.job_id = 5;
  return e;
}

TEST(TaskEventTable, MergesEventsFromSeveralNodesInAnyOrder) {
  TaskEventTable t;
  // The running node's events arrive before the owner's.
  TaskEvent running = Ev(1, TaskEventKind::kRunning, 2);
  running.worker_pid = 77;
  t.Apply(running);
  t.Apply(Ev(1, TaskEventKind::kFinished, 2));
  t.Apply(Ev(1, TaskEventKind::kSubmitted, 1));
  t.Apply(Ev(1, TaskEventKind::kScheduled, 2));
  auto r = t.Find(Tid(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->state, TaskEventKind::kFinished);
  EXPECT_EQ(r->name, "f1");
  EXPECT_EQ(r->owner_node, 1u);
  EXPECT_EQ(r->node, 2u);
  EXPECT_EQ(r->worker_pid, 77u);
  EXPECT_NE(r->submitted_us, 0);
  EXPECT_NE(r->running_us, 0);
  EXPECT_NE(r->end_us, 0);
}

TEST(TaskEventTable, ANewAttemptStartsTheRowOverAndOldOnesAreIgnored) {
  TaskEventTable t;
  t.Apply(Ev(1, TaskEventKind::kSubmitted));
  TaskEvent failed = Ev(1, TaskEventKind::kFailed);
  failed.error = "boom";
  t.Apply(Ev(1, TaskEventKind::kRunning));
  t.Apply(Ev(1, TaskEventKind::kScheduled, 3, 1));  // retried on node 3
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kScheduled);
  EXPECT_EQ(t.Find(Tid(1))->attempt, 1u);
  EXPECT_EQ(t.Find(Tid(1))->running_us, 0);
  t.Apply(failed);  // attempt 0's late news
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kScheduled);
  EXPECT_TRUE(t.Find(Tid(1))->error.empty());
  EXPECT_EQ(t.Find(Tid(1))->name, "f1");  // kept from the submission
}

TEST(TaskEventTable, FailedRowsKeepTheirError) {
  TaskEventTable t;
  t.Apply(Ev(1, TaskEventKind::kSubmitted));
  TaskEvent failed = Ev(1, TaskEventKind::kFailed, 1);
  failed.error = "Traceback ... ValueError: boom";
  failed.error_kind = 1;
  t.Apply(failed);
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kFailed);
  EXPECT_EQ(t.Find(Tid(1))->error, "Traceback ... ValueError: boom");
}

TEST(TaskEventTable, BoundedByCountDroppingTheOldestFinishedFirst) {
  TaskEventTable t(4);
  for (uint32_t i = 1; i <= 3; ++i) t.Apply(Ev(i, TaskEventKind::kSubmitted));  // 1..3 pending
  t.Apply(Ev(4, TaskEventKind::kSubmitted));
  t.Apply(Ev(4, TaskEventKind::kFinished));
  t.Apply(Ev(2, TaskEventKind::kFinished));  // finished after 4
  t.Apply(Ev(5, TaskEventKind::kSubmitted));  // over capacity: 4 (finished first) goes
  EXPECT_EQ(t.size(), 4u);
  EXPECT_FALSE(t.Find(Tid(4)).has_value());
  EXPECT_TRUE(t.Find(Tid(2)).has_value());
  t.Apply(Ev(6, TaskEventKind::kSubmitted));  // then 2, the other finished one
  EXPECT_FALSE(t.Find(Tid(2)).has_value());
  t.Apply(Ev(7, TaskEventKind::kSubmitted));  // nothing finished: the oldest of all (1)
  EXPECT_FALSE(t.Find(Tid(1)).has_value());
  EXPECT_TRUE(t.Find(Tid(3)).has_value());
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.Stats().dropped_on_head, 3u);
  EXPECT_EQ(t.Stats().stored, 4u);
  EXPECT_EQ(t.Stats().capacity, 4u);
}

TEST(TaskEventTable, ARunningTaskOutlivesManyFinishedOnes) {
  TaskEventTable t(100);
  TaskEvent running = Ev(1, TaskEventKind::kRunning, 1);
  running.name = "actor_init";
  t.Apply(running);
  for (uint32_t i = 2; i <= 10000; ++i) {
    TaskEvent e = Ev(i, TaskEventKind::kFinished, 1);
    e.submitted_us = e.running_us = e.end_us;  // every stage in one entry, as a node ships them
    e.name = "f";
    t.Apply(e);
  }
  EXPECT_EQ(t.size(), 100u);
  ASSERT_TRUE(t.Find(Tid(1)).has_value());
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kRunning);
  EXPECT_EQ(t.Find(Tid(1))->name, "actor_init");
  t.Apply(Ev(1, TaskEventKind::kFinished, 1));  // it ends: merged, and closed
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kFinished);
  EXPECT_EQ(t.Find(Tid(1))->name, "actor_init");
  EXPECT_FALSE(t.Find(Tid(9900)).has_value());
  EXPECT_TRUE(t.Find(Tid(9999)).has_value());
}

TEST(TaskEventTable, TransfersAreKeptBoundedAndCounted) {
  TaskEventTable t;
  protocol::TaskEventBatch b;
  b.node = 2;
  b.transfers_dropped = 3;
  ObjectID obj = Tid(7);
  b.transfers.push_back(protocol::TransferEvent{obj, 1234, 1, 2, 10, 20});
  std::string body = protocol::EncodeValue(b);
  ASSERT_TRUE(t.ApplyEncoded(body, 2).ok());
  ASSERT_EQ(t.transfers().size(), 1u);
  EXPECT_EQ(t.transfers()[0].object_id, obj);
  EXPECT_EQ(t.transfers()[0].bytes, 1234u);
  EXPECT_EQ(t.Stats().transfers_dropped, 3u);
  b.transfers.assign(TaskEventTable::kMaxTransfers, protocol::TransferEvent{obj, 1, 1, 2, 10, 20});
  t.Apply(b);
  EXPECT_EQ(t.transfers().size(), TaskEventTable::kMaxTransfers);
  EXPECT_EQ(t.Stats().transfers_stored, TaskEventTable::kMaxTransfers);
  EXPECT_EQ(t.Stats().transfers_dropped, 4u);  // one evicted here, 3 on the node
}

TEST(TaskEventTable, ManyTasksStayWithinCapacity) {
  TaskEventTable t(1000);
  for (uint32_t i = 1; i <= 20000; ++i) {
    t.Apply(Ev(i, TaskEventKind::kSubmitted));
    if (i % 3 != 0) t.Apply(Ev(i, TaskEventKind::kFinished));
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.Stats().dropped_on_head, 19000u);
}

TEST(TaskEventTable, QueryFiltersLimitsAndCounts) {
  TaskEventTable t;
  for (uint32_t i = 1; i <= 10; ++i) {
    t.Apply(Ev(i, TaskEventKind::kSubmitted, 1));
    t.Apply(Ev(i, TaskEventKind::kRunning, i % 2 ? 2 : 3));
    if (i <= 6) t.Apply(Ev(i, i == 6 ? TaskEventKind::kFailed : TaskEventKind::kFinished, i % 2 ? 2 : 3));
  }
  protocol::TaskQuery q;
  uint64_t matched = 0;
  EXPECT_EQ(t.Query(q, &matched).size(), 10u);
  q.state = static_cast<uint8_t>(TaskEventKind::kFinished);
  EXPECT_EQ(t.Query(q, &matched).size(), 5u);
  q.node = 2;
  auto rows = t.Query(q, &matched);
  EXPECT_EQ(matched, 3u);  // 1, 3, 5
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].task_id, Tid(1));  // oldest first
  q = {};
  q.name = "f0";
  q.limit = 2;
  rows = t.Query(q, &matched);
  EXPECT_EQ(matched, 5u);
  EXPECT_EQ(rows.size(), 2u);
  q = {};
  q.task_id = Tid(6);
  rows = t.Query(q, &matched);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, TaskEventKind::kFailed);
  q.has_job = true;
  q.job_id = 6;
  EXPECT_TRUE(t.Query(q, &matched).empty());
}

TEST(TaskEventTable, SummaryCountsByNameAndState) {
  TaskEventTable t;
  for (uint32_t i = 1; i <= 6; ++i) {
    t.Apply(Ev(i, TaskEventKind::kSubmitted));
    if (i <= 4) t.Apply(Ev(i, TaskEventKind::kFinished));
  }
  auto rows = t.Summarize();
  ASSERT_EQ(rows.size(), 2u);  // f0 and f1
  uint64_t finished = 0, pending = 0;
  for (const auto& r : rows) {
    finished += r.counts[static_cast<uint8_t>(TaskEventKind::kFinished)];
    pending += r.counts[static_cast<uint8_t>(TaskEventKind::kSubmitted)];
  }
  EXPECT_EQ(finished, 4u);
  EXPECT_EQ(pending, 2u);
}

TEST(TaskEventTable, NodeDropReportsAreSummed) {
  TaskEventTable t;
  protocol::TaskEventBatch b;
  b.node = 1;
  b.dropped = 5;
  t.Apply(b);
  b.dropped = 7;  // cumulative: the latest counts
  t.Apply(b);
  b.node = 2;
  b.dropped = 3;
  t.Apply(b);
  EXPECT_EQ(t.Stats().dropped_on_nodes, 10u);
}

TEST(TaskEventTable, AppliesAnEncodedBatchAndRefusesAMalformedOne) {
  TaskEventTable t;
  protocol::TaskEventBatch b;
  b.node = 9;  // claimed: the connection's node counts
  b.dropped = 4;
  b.events = {Ev(1, TaskEventKind::kSubmitted), Ev(1, TaskEventKind::kFinished), Ev(2, TaskEventKind::kSubmitted)};
  std::string body = protocol::EncodeValue(b);
  ASSERT_TRUE(t.ApplyEncoded(body, 3).ok());
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Find(Tid(1))->state, TaskEventKind::kFinished);
  EXPECT_EQ(t.Stats().dropped_on_nodes, 4u);
  EXPECT_FALSE(t.ApplyEncoded(body.substr(0, body.size() - 3), 3).ok());
  EXPECT_FALSE(t.ApplyEncoded(body + "x", 3).ok());
  EXPECT_FALSE(t.ApplyEncoded("", 3).ok());
}

TEST(TaskEventTable, RetriedAndEvictedRowsLeaveNoStaleOrder) {
  TaskEventTable t(50);
  // Rows that finish, are retried (no longer finished) and finish again, many times over.
  for (uint32_t round = 0; round < 200; ++round) {
    for (uint32_t i = 1; i <= 40; ++i) {
      t.Apply(Ev(i + 1000 * (round % 3), TaskEventKind::kSubmitted, 1, round));
      t.Apply(Ev(i + 1000 * (round % 3), TaskEventKind::kFinished, 1, round));
    }
  }
  EXPECT_EQ(t.size(), 50u);
  protocol::TaskQuery q;
  uint64_t matched = 0;
  auto rows = t.Query(q, &matched);
  EXPECT_EQ(matched, 50u);
  EXPECT_EQ(rows.size(), 50u);
}

TEST(TaskEventMessages, RoundTripAndRejectsBadInput) {
  protocol::TaskEventBatch b;
  b.node = 4;
  b.dropped = 9;
  TaskEvent e = Ev(3, TaskEventKind::kFailed);
  e.error = "bad";
  e.resources = {{"CPU", 5000}};
  e.worker_pid = 12;
  b.events = {e, Ev(4, TaskEventKind::kSubmitted)};
  std::string body = protocol::EncodeValue(b);
  protocol::TaskEventBatch out;
  ASSERT_TRUE(protocol::DecodeValue(body, &out).ok());
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].error, "bad");
  EXPECT_EQ(out.events[0].resources, e.resources);
  EXPECT_EQ(out.events[1].name, "f0");
  EXPECT_EQ(out.dropped, 9u);
  // A truncated body, a forged count and an unknown kind are refused.
  EXPECT_FALSE(protocol::DecodeValue(body.substr(0, body.size() - 1), &out).ok());
  std::string forged = body;
  forged[12] = '\xff';  // the event count's low byte
  forged[15] = '\x7f';
  EXPECT_FALSE(protocol::DecodeValue(forged, &out).ok());
  std::string bad_kind = body;
  bad_kind[16 + ObjectID::kSize] = 9;  // the first event's kind
  EXPECT_FALSE(protocol::DecodeValue(bad_kind, &out).ok());

  protocol::TaskRecord r;
  r.task_id = Tid(1);
  r.state = TaskEventKind::kRunning;
  r.name = "g";
  r.error = "x";
  protocol::TaskRecord r2;
  ASSERT_TRUE(protocol::DecodeValue(protocol::EncodeValue(r), &r2).ok());
  EXPECT_EQ(r2.name, "g");
  EXPECT_EQ(r2.state, TaskEventKind::kRunning);
}

}  // namespace
}  // namespace quanta
