#include "control/task_event_table.h"

#include <algorithm>

namespace quanta {

using protocol::TaskEvent;
using protocol::TaskEventKind;
using protocol::TaskRecord;

namespace {
bool Terminal(TaskEventKind k) { return k == TaskEventKind::kFinished || k == TaskEventKind::kFailed; }
}  // namespace

bool TaskEventTable::Entry::closed() const {
  if (Terminal(state)) return true;
  // An owner's record of a task placed on another node: that node records the rest.
  return running_us == 0 && owner_node != 0 && placed_on != 0 && placed_on != owner_node;
}

uint32_t TaskEventTable::InternName(const std::string& name) { return names_.Intern(name); }

uint32_t TaskEventTable::InternResources(const protocol::ResourceMap& resources) {
  return resources_.Intern(resources);
}

void TaskEventTable::Apply(const protocol::TaskEventBatch& batch) {
  uint64_t& d = node_dropped_[batch.node];
  d = std::max(d, batch.dropped);
  for (const auto& e : batch.events) Apply(e);
  uint64_t& td = node_transfers_dropped_[batch.node];
  td = std::max(td, batch.transfers_dropped);
  for (const auto& t : batch.transfers) AddTransfer(t);
}

void TaskEventTable::AddTransfer(const protocol::TransferEvent& t) {
  if (transfers_.size() >= kMaxTransfers) {
    transfers_.pop_front();
    ++transfers_dropped_;
  }
  transfers_.push_back(t);
}

Status TaskEventTable::ApplyEncoded(std::string_view body, uint32_t node) {
  protocol::Reader r(body);
  uint32_t claimed, n;
  uint64_t dropped;
  QUANTA_RETURN_IF_ERROR(r.U32(&claimed));
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped));
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 100));
  uint64_t& d = node_dropped_[node];  // a node reports for itself only, whatever it claims
  d = std::max(d, dropped);
  for (uint32_t i = 0; i < n; ++i) {
    QUANTA_RETURN_IF_ERROR(scratch_.Decode(r));
    Apply(scratch_);
  }
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped));
  uint64_t& td = node_transfers_dropped_[node];
  td = std::max(td, dropped);
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 48));
  for (uint32_t i = 0; i < n; ++i) {
    protocol::TransferEvent t;
    QUANTA_RETURN_IF_ERROR(t.Decode(r));
    AddTransfer(t);
  }
  return r.ExpectEnd();
}

TaskEventTable::Entry TaskEventTable::FromEvent(const TaskEvent& e) {
  Entry x;
  x.task_id = e.task_id;
  x.actor_id = e.actor_id;
  x.seq = next_seq_++;
  x.job_id = e.job_id;
  x.attempt = e.attempt;
  x.state = e.kind;
  x.task_kind = e.task_kind;
  x.submitted_us = e.submitted_us;
  x.scheduled_us = e.scheduled_us;
  x.running_us = e.running_us;
  x.end_us = e.end_us;
  if (e.submitted_us != 0) {
    x.owner_node = e.node;
    x.resources = InternResources(e.resources);
  }
  if (e.scheduled_us != 0) x.placed_on = e.placed_on;
  if (e.running_us != 0) {
    x.ran_on = e.ran_on != 0 ? e.ran_on : e.node;
    x.worker_pid = e.worker_pid;
    x.worker_id = e.worker_id;
  }
  if (e.end_us != 0) x.ended_on = e.node;
  x.name = InternName(e.name);
  if (e.end_us != 0 && e.kind == TaskEventKind::kFailed) {
    x.error_kind = e.error_kind;
    if (!e.error.empty()) {
      x.error_key = x.seq;
      errors_.emplace(x.seq, e.error);
    }
  }
  return x;
}

void TaskEventTable::Merge(Entry& r, const Entry& e) {
  r.seq = std::min(r.seq, e.seq);
  if (e.attempt < r.attempt) {  // an older attempt's late event
    if (r.name == 0) r.name = e.name;
    return;
  }
  if (e.attempt > r.attempt) {  // a retry: the row follows the new attempt
    r.attempt = e.attempt;
    r.state = e.state;
    r.scheduled_us = r.running_us = r.end_us = 0;
    r.placed_on = r.ran_on = r.ended_on = 0;
    r.worker_pid = 0;
    r.worker_id = 0;
    r.error_kind = 0;
    r.error_key = 0;
  } else if (static_cast<uint8_t>(e.state) > static_cast<uint8_t>(r.state)) {
    r.state = e.state;
  }
  r.task_kind = e.task_kind;
  if (e.job_id != 0) r.job_id = e.job_id;
  if (!e.actor_id.IsNil()) r.actor_id = e.actor_id;
  if (e.submitted_us != 0) {  // the owner's node
    if (r.submitted_us == 0 || e.submitted_us < r.submitted_us) r.submitted_us = e.submitted_us;
    r.owner_node = e.owner_node;
    if (e.resources != 0) r.resources = e.resources;
  }
  if (e.name != 0 && (e.submitted_us != 0 || r.name == 0)) r.name = e.name;
  if (e.scheduled_us != 0) {
    r.scheduled_us = e.scheduled_us;
    r.placed_on = e.placed_on;
  }
  if (e.running_us != 0) {
    r.running_us = e.running_us;
    r.ran_on = e.ran_on;
    r.worker_pid = e.worker_pid;
    r.worker_id = e.worker_id;
  }
  if (e.end_us != 0) {
    r.end_us = e.end_us;
    r.ended_on = e.ended_on;
    if (e.state == TaskEventKind::kFailed) {
      r.error_kind = e.error_kind;
      r.error_key = e.error_key;
    }
  }
}

void TaskEventTable::DropError(uint64_t key) {
  if (key != 0) errors_.erase(key);
}

void TaskEventTable::Apply(const TaskEvent& event) {
  Entry e = FromEvent(event);
  if (!open_.empty()) {
    auto it = open_.find(e.task_id);
    if (it != open_.end()) {
      Entry& row = it->second;
      uint64_t had = row.error_key;
      Merge(row, e);
      if (had != row.error_key) DropError(had);
      if (e.error_key != row.error_key) DropError(e.error_key);
      if (row.closed()) {
        PushRing(row);
        open_.erase(it);
      }
      Bound();
      return;
    }
  }
  if (e.closed()) {
    PushRing(e);
  } else {
    open_.emplace(e.task_id, e);
    open_order_.emplace_back(e.seq, e.task_id);
  }
  Bound();
}

void TaskEventTable::PushRing(const Entry& e) {
  if (ring_count_ == ring_.size()) {  // grow, keeping the order from index 0
    if (ring_head_ != 0) {
      std::rotate(ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(ring_head_), ring_.end());
      ring_head_ = 0;
    }
    ring_.push_back(e);
    ++ring_count_;
    return;
  }
  ring_[(ring_head_ + ring_count_) % ring_.size()] = e;
  ++ring_count_;
}

void TaskEventTable::Bound() {
  while (ring_count_ + open_.size() > capacity_) {
    ++dropped_;
    if (ring_count_ > 0) {  // the oldest closed entry
      DropError(ring_[ring_head_].error_key);
      ring_head_ = (ring_head_ + 1) % ring_.size();
      --ring_count_;
      continue;
    }
    while (!open_order_.empty()) {  // else the oldest open one
      auto [seq, id] = open_order_.front();
      open_order_.pop_front();
      auto it = open_.find(id);
      if (it == open_.end() || it->second.seq != seq) continue;  // stale: moved or gone
      DropError(it->second.error_key);
      open_.erase(it);
      break;
    }
  }
  if (open_order_.size() > 2 * open_.size() + 64) {  // drop stale entries
    std::deque<std::pair<uint64_t, TaskID>> kept;
    for (const auto& [seq, id] : open_order_) {
      auto it = open_.find(id);
      if (it != open_.end() && it->second.seq == seq) kept.emplace_back(seq, id);
    }
    open_order_.swap(kept);
  }
}

std::vector<TaskEventTable::Entry> TaskEventTable::MergeAll() const {
  std::vector<Entry> rows;
  rows.reserve(size());
  std::unordered_map<TaskID, uint32_t, ObjectIDHash> index;
  index.reserve(size());
  auto add = [&](const Entry& e) {
    auto [it, fresh] = index.try_emplace(e.task_id, static_cast<uint32_t>(rows.size()));
    if (fresh) {
      rows.push_back(e);
    } else {
      Merge(rows[it->second], e);
    }
  };
  for (size_t i = 0; i < ring_count_; ++i) add(RingAt(i));
  for (const auto& [id, e] : open_) add(e);
  std::sort(rows.begin(), rows.end(), [](const Entry& a, const Entry& b) { return a.seq < b.seq; });
  return rows;
}

bool TaskEventTable::Matches(const Entry& r, const protocol::TaskQuery& q) const {
  if (!q.task_id.IsNil() && r.task_id != q.task_id) return false;
  if (q.state != 0 && static_cast<uint8_t>(r.state) != q.state) return false;
  if (q.has_job && r.job_id != q.job_id) return false;
  if (q.node != 0 && r.node() != q.node) return false;
  if (!q.name.empty() && names_[r.name] != q.name) return false;
  if (!q.actor_id.IsNil() && r.actor_id != q.actor_id) return false;
  return true;
}

TaskRecord TaskEventTable::ToRecord(const Entry& e) const {
  TaskRecord r;
  r.task_id = e.task_id;
  r.attempt = e.attempt;
  r.task_kind = e.task_kind;
  r.state = e.state;
  r.name = names_[e.name];
  r.job_id = e.job_id;
  r.actor_id = e.actor_id;
  r.owner_node = e.owner_node;
  r.node = e.node();
  r.worker_pid = e.worker_pid;
  r.worker_id = e.worker_id;
  r.resources = resources_[e.resources];
  r.submitted_us = e.submitted_us;
  r.scheduled_us = e.scheduled_us;
  r.running_us = e.running_us;
  r.end_us = e.end_us;
  r.error_kind = e.error_kind;
  if (e.error_key != 0) {
    auto it = errors_.find(e.error_key);
    if (it != errors_.end()) r.error = it->second;
  }
  return r;
}

std::vector<TaskRecord> TaskEventTable::Query(const protocol::TaskQuery& q, uint64_t* matched) const {
  std::vector<TaskRecord> out;
  uint64_t n = 0;
  if (!q.task_id.IsNil()) {  // one task: its entries only
    std::optional<TaskRecord> r;
    std::optional<Entry> row;
    for (size_t i = 0; i < ring_count_; ++i) {
      const Entry& e = RingAt(i);
      if (e.task_id != q.task_id) continue;
      if (row) Merge(*row, e); else row = e;
    }
    auto it = open_.find(q.task_id);
    if (it != open_.end()) {
      if (row) Merge(*row, it->second); else row = it->second;
    }
    if (row && Matches(*row, q)) {
      out.push_back(ToRecord(*row));
      n = 1;
    }
  } else {
    for (const Entry& e : MergeAll()) {
      if (!Matches(e, q)) continue;
      ++n;
      if (q.limit == 0 || out.size() < q.limit) out.push_back(ToRecord(e));
    }
  }
  if (matched) *matched = n;
  return out;
}

std::vector<protocol::TaskSummaryRow> TaskEventTable::Summarize() const {
  std::map<std::pair<uint32_t, uint8_t>, protocol::TaskSummaryRow> by;
  for (const Entry& e : MergeAll()) {
    auto& s = by[{e.name, e.task_kind}];
    s.task_kind = e.task_kind;
    ++s.counts[static_cast<uint8_t>(e.state)];
  }
  std::vector<protocol::TaskSummaryRow> out;
  out.reserve(by.size());
  for (auto& [key, s] : by) {
    s.name = names_[key.first];
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.name, a.task_kind) < std::tie(b.name, b.task_kind);
  });
  return out;
}

protocol::TaskTableStats TaskEventTable::Stats() const {
  protocol::TaskTableStats s;
  s.stored = size();
  s.capacity = capacity_;
  s.dropped_on_head = dropped_;
  for (const auto& [node, d] : node_dropped_) s.dropped_on_nodes += d;
  s.transfers_stored = transfers_.size();
  s.transfers_dropped = transfers_dropped_;
  for (const auto& [node, d] : node_transfers_dropped_) s.transfers_dropped += d;
  return s;
}

std::optional<TaskRecord> TaskEventTable::Find(const TaskID& id) const {
  protocol::TaskQuery q;
  q.task_id = id;
  auto rows = Query(q, nullptr);
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

}  // namespace quanta
