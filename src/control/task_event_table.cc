#include "control/task_event_table.h"

namespace quanta {

using protocol::TaskEvent;
using protocol::TaskEventKind;
using protocol::TaskRecord;

void TaskEventTable::Apply(const protocol::TaskEventBatch& batch) {
  uint64_t& d = node_dropped_[batch.node];
  if (batch.dropped > d) d = batch.dropped;
  for (const auto& e : batch.events) Apply(e);
}

void TaskEventTable::SetTerminal(Row& row, bool terminal) {
  if (row.finished != 0) {
    finished_.erase(row.finished);
    row.finished = 0;
  }
  if (terminal) {
    row.finished = next_finished_++;
    finished_.emplace(row.finished, row.record.task_id);
  }
}

void TaskEventTable::Apply(const TaskEvent& e) {
  auto [it, added] = rows_.try_emplace(e.task_id);
  Row& row = it->second;
  TaskRecord& r = row.record;
  if (added) {
    row.order = next_order_++;
    order_.emplace(row.order, e.task_id);
    r.task_id = e.task_id;
    r.attempt = e.attempt;
    r.state = e.kind;
  } else if (e.attempt < r.attempt) {
    return;  // an older attempt's late event
  } else if (e.attempt > r.attempt) {  // a retry: the row follows the new attempt
    r.attempt = e.attempt;
    r.state = e.kind;
    r.scheduled_us = r.running_us = r.end_us = 0;
    r.worker_pid = 0;
    r.worker_id = 0;
    r.error_kind = 0;
    r.error.clear();
  } else if (static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(r.state)) {
    r.state = e.kind;
  }
  r.task_kind = e.task_kind;
  if (e.job_id != 0) r.job_id = e.job_id;
  if (!e.actor_id.IsNil()) r.actor_id = e.actor_id;
  switch (e.kind) {
    case TaskEventKind::kSubmitted:
      if (r.submitted_us == 0) r.submitted_us = e.time_us;
      r.owner_node = e.node;
      if (!e.name.empty()) r.name = e.name;
      r.resources = e.resources;
      break;
    case TaskEventKind::kScheduled:
      r.scheduled_us = e.time_us;
      if (r.running_us == 0) r.node = e.node;  // where it runs wins over where it was sent
      break;
    case TaskEventKind::kRunning:
      r.running_us = e.time_us;
      r.node = e.node;
      r.worker_pid = e.worker_pid;
      r.worker_id = e.worker_id;
      if (!e.name.empty() && r.name.empty()) r.name = e.name;
      break;
    case TaskEventKind::kFinished:
    case TaskEventKind::kFailed:
      r.end_us = e.time_us;
      if (r.node == 0) r.node = e.node;
      if (e.kind == TaskEventKind::kFailed) {
        r.error_kind = e.error_kind;
        r.error = e.error;
      }
      break;
  }
  bool terminal = r.terminal();
  if (terminal != (row.finished != 0)) SetTerminal(row, terminal);
  if (added && rows_.size() > capacity_) Evict();
}

void TaskEventTable::Evict() {
  while (rows_.size() > capacity_) {
    std::map<uint64_t, TaskID>& from = finished_.empty() ? order_ : finished_;
    TaskID id = from.begin()->second;
    auto it = rows_.find(id);
    if (it != rows_.end()) {
      order_.erase(it->second.order);
      if (it->second.finished != 0) finished_.erase(it->second.finished);
      rows_.erase(it);
    } else {
      from.erase(from.begin());
    }
    ++dropped_;
  }
}

static bool Matches(const TaskRecord& r, const protocol::TaskQuery& q) {
  if (!q.task_id.IsNil() && r.task_id != q.task_id) return false;
  if (q.state != 0 && static_cast<uint8_t>(r.state) != q.state) return false;
  if (q.has_job && r.job_id != q.job_id) return false;
  if (q.node != 0 && r.node != q.node) return false;
  if (!q.name.empty() && r.name != q.name) return false;
  if (!q.actor_id.IsNil() && r.actor_id != q.actor_id) return false;
  return true;
}

std::vector<const TaskRecord*> TaskEventTable::Query(const protocol::TaskQuery& q, uint64_t* matched) const {
  std::vector<const TaskRecord*> out;
  uint64_t n = 0;
  if (!q.task_id.IsNil()) {  // one row: no scan
    const TaskRecord* r = Find(q.task_id);
    if (r != nullptr && Matches(*r, q)) {
      out.push_back(r);
      n = 1;
    }
  } else {
    for (const auto& [order, id] : order_) {
      const TaskRecord& r = rows_.at(id).record;
      if (!Matches(r, q)) continue;
      ++n;
      if (q.limit == 0 || out.size() < q.limit) out.push_back(&r);
    }
  }
  if (matched) *matched = n;
  return out;
}

std::vector<protocol::TaskSummaryRow> TaskEventTable::Summarize() const {
  std::map<std::pair<std::string, uint8_t>, protocol::TaskSummaryRow> by;
  for (const auto& [id, row] : rows_) {
    auto& s = by[{row.record.name, row.record.task_kind}];
    s.name = row.record.name;
    s.task_kind = row.record.task_kind;
    ++s.counts[static_cast<uint8_t>(row.record.state)];
  }
  std::vector<protocol::TaskSummaryRow> out;
  out.reserve(by.size());
  for (auto& [key, s] : by) out.push_back(std::move(s));
  return out;
}

protocol::TaskTableStats TaskEventTable::Stats() const {
  protocol::TaskTableStats s;
  s.stored = rows_.size();
  s.capacity = capacity_;
  s.dropped_on_head = dropped_;
  for (const auto& [node, d] : node_dropped_) s.dropped_on_nodes += d;
  return s;
}

const TaskRecord* TaskEventTable::Find(const TaskID& id) const {
  auto it = rows_.find(id);
  return it == rows_.end() ? nullptr : &it->second.record;
}

}  // namespace quanta
