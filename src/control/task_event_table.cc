#include "control/task_event_table.h"

#include <map>

namespace quanta {

using protocol::TaskEvent;
using protocol::TaskEventKind;
using protocol::TaskRecord;

void TaskEventTable::NoteDropped(uint32_t node, uint64_t dropped) {
  uint64_t& d = node_dropped_[node];
  if (dropped > d) d = dropped;
}

void TaskEventTable::Apply(const protocol::TaskEventBatch& batch) {
  NoteDropped(batch.node, batch.dropped);
  for (const auto& e : batch.events) Apply(e);
}

Status TaskEventTable::ApplyEncoded(std::string_view body, uint32_t node) {
  protocol::Reader r(body);
  uint32_t claimed, n;
  uint64_t dropped;
  QUANTA_RETURN_IF_ERROR(r.U32(&claimed));
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped));
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 100));
  NoteDropped(node, dropped);  // a node reports for itself only, whatever it claims
  for (uint32_t i = 0; i < n; ++i) {
    QUANTA_RETURN_IF_ERROR(scratch_.Decode(r));
    Apply(scratch_);
  }
  return r.ExpectEnd();
}

bool TaskEventTable::Live(const Queue::value_type& entry, bool finished) const {
  auto it = rows_.find(entry.second);
  return it != rows_.end() && (finished ? it->second.finished : it->second.order) == entry.first;
}

void TaskEventTable::Compact(Queue& q, bool finished) {
  Queue kept;
  for (const auto& e : q) {
    if (Live(e, finished)) kept.push_back(e);
  }
  q.swap(kept);
}

void TaskEventTable::SetTerminal(Row& row, bool terminal) {
  row.finished = 0;  // its old entry, if any, is stale now
  if (terminal) {
    row.finished = next_finished_++;
    finished_.emplace_back(row.finished, row.record.task_id);
    if (finished_.size() > 2 * capacity_ + 16) Compact(finished_, true);
  }
}

void TaskEventTable::Apply(const TaskEvent& e) {
  auto [it, added] = rows_.try_emplace(e.task_id);
  Row& row = it->second;
  TaskRecord& r = row.record;
  if (added) {
    row.order = next_order_++;
    order_.emplace_back(row.order, e.task_id);
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
  if (e.submitted_us != 0) {  // the owner's node
    if (r.submitted_us == 0 || e.submitted_us < r.submitted_us) r.submitted_us = e.submitted_us;
    r.owner_node = e.node;
    if (!e.name.empty()) r.name = e.name;
    r.resources = e.resources;
  }
  if (e.scheduled_us != 0) {
    r.scheduled_us = e.scheduled_us;
    if (r.running_us == 0) r.node = e.placed_on;  // where it runs wins over where it was sent
  }
  if (e.running_us != 0) {
    r.running_us = e.running_us;
    r.node = e.node;
    r.worker_pid = e.worker_pid;
    r.worker_id = e.worker_id;
    if (r.name.empty()) r.name = e.name;
  }
  if (e.end_us != 0) {
    r.end_us = e.end_us;
    if (r.node == 0) r.node = e.node;
    if (e.kind == TaskEventKind::kFailed) {
      r.error_kind = e.error_kind;
      r.error = e.error;
    }
  }
  bool terminal = r.terminal();
  if (terminal != (row.finished != 0)) SetTerminal(row, terminal);
  if (added && rows_.size() > capacity_) Evict();
}

void TaskEventTable::Evict() {
  // One hash lookup per evicted row: the front entry's row is found, checked and erased at once.
  // (order_ keeps the entries of rows evicted as finished until they reach its front or it is
  // compacted; only a Query or an eviction by age walks it.)
  while (rows_.size() > capacity_) {
    Queue& from = finished_.empty() ? order_ : finished_;
    bool finished = &from == &finished_;
    if (from.empty()) break;  // cannot happen: every row has an order entry
    auto [seq, id] = from.front();
    from.pop_front();
    auto it = rows_.find(id);
    if (it == rows_.end() || (finished ? it->second.finished : it->second.order) != seq) continue;  // stale
    rows_.erase(it);
    ++dropped_;
  }
  if (order_.size() > 2 * capacity_ + 16) Compact(order_, false);
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
    for (const auto& entry : order_) {
      auto it = rows_.find(entry.second);
      if (it == rows_.end() || it->second.order != entry.first) continue;  // stale
      const TaskRecord& r = it->second.record;
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
