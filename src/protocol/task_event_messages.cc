#include "protocol/task_event_messages.h"

namespace quanta::protocol {

namespace {
constexpr size_t kMaxError = 16 << 10;
constexpr size_t kMaxName = 4096;

Status Kind(Reader& r, TaskEventKind* kind, bool allow_zero = false) {
  uint8_t k;
  QUANTA_RETURN_IF_ERROR(r.U8(&k));
  if ((k == 0 && !allow_zero) || k > kTaskEventKindMax) {
    return Status::ProtocolError("unknown task event kind " + std::to_string(k));
  }
  *kind = static_cast<TaskEventKind>(k);
  return Status::Ok();
}

Status Clipped(Reader& r, std::string* s, size_t max, const char* what) {
  QUANTA_RETURN_IF_ERROR(r.Bytes(s));
  if (s->size() > max) return Status::ProtocolError(std::string("task event ") + what + " too long");
  return Status::Ok();
}
}  // namespace

void TaskEvent::Encode(Writer& w) const {
  w.Id(task_id);
  w.U8(static_cast<uint8_t>(kind));
  w.U8(task_kind);
  w.U32(attempt);
  w.U32(node);
  w.U32(placed_on);
  w.I64(submitted_us);
  w.I64(scheduled_us);
  w.I64(running_us);
  w.I64(end_us);
  w.U64(job_id);
  w.Id(actor_id);
  w.Bytes(name);
  EncodeResources(w, resources);
  w.U32(worker_pid);
  w.U64(worker_id);
  w.U8(error_kind);
  w.Bytes(error);
  w.U32(ran_on);
}

Status TaskEvent::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(Kind(r, &kind));
  QUANTA_RETURN_IF_ERROR(r.U8(&task_kind));
  if (task_kind > 2) return Status::ProtocolError("unknown task kind in a task event");
  QUANTA_RETURN_IF_ERROR(r.U32(&attempt));
  QUANTA_RETURN_IF_ERROR(r.U32(&node));
  QUANTA_RETURN_IF_ERROR(r.U32(&placed_on));
  QUANTA_RETURN_IF_ERROR(r.I64(&submitted_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&scheduled_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&running_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&end_us));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  QUANTA_RETURN_IF_ERROR(Clipped(r, &name, kMaxName, "name"));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &resources));
  QUANTA_RETURN_IF_ERROR(r.U32(&worker_pid));
  QUANTA_RETURN_IF_ERROR(r.U64(&worker_id));
  QUANTA_RETURN_IF_ERROR(r.U8(&error_kind));
  QUANTA_RETURN_IF_ERROR(Clipped(r, &error, kMaxError, "error"));
  return r.U32(&ran_on);
}

void TaskEventBatch::Encode(Writer& w) const {
  w.U32(node);
  w.U64(dropped);
  w.U32(static_cast<uint32_t>(events.size()));
  for (const auto& e : events) e.Encode(w);
  w.U64(transfers_dropped);
  w.U32(static_cast<uint32_t>(transfers.size()));
  for (const auto& t : transfers) t.Encode(w);
}

void TransferEvent::Encode(Writer& w) const {
  w.Id(object_id);
  w.U64(bytes);
  w.U32(from_node);
  w.U32(to_node);
  w.I64(start_us);
  w.I64(end_us);
}

Status TransferEvent::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&bytes));
  QUANTA_RETURN_IF_ERROR(r.U32(&from_node));
  QUANTA_RETURN_IF_ERROR(r.U32(&to_node));
  QUANTA_RETURN_IF_ERROR(r.I64(&start_us));
  return r.I64(&end_us);
}

Status TaskEventBatch::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&node));
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 100));
  events.resize(n);
  for (auto& e : events) QUANTA_RETURN_IF_ERROR(e.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.U64(&transfers_dropped));
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 48));
  transfers.resize(n);
  for (auto& t : transfers) QUANTA_RETURN_IF_ERROR(t.Decode(r));
  return Status::Ok();
}

void TaskQuery::Encode(Writer& w) const {
  w.Id(task_id);
  w.U8(state);
  w.U8(has_job);
  w.U64(job_id);
  w.U32(node);
  w.Bytes(name);
  w.Id(actor_id);
  w.U32(limit);
}

Status TaskQuery::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.U8(&state));
  if (state > kTaskEventKindMax) return Status::ProtocolError("unknown task state in a query");
  QUANTA_RETURN_IF_ERROR(r.Bool(&has_job));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&node));
  QUANTA_RETURN_IF_ERROR(Clipped(r, &name, kMaxName, "name"));
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  return r.U32(&limit);
}

void TaskRecord::Encode(Writer& w) const {
  w.Id(task_id);
  w.U32(attempt);
  w.U8(task_kind);
  w.U8(static_cast<uint8_t>(state));
  w.Bytes(name);
  w.U64(job_id);
  w.Id(actor_id);
  w.U32(owner_node);
  w.U32(node);
  w.U32(worker_pid);
  w.U64(worker_id);
  EncodeResources(w, resources);
  w.I64(submitted_us);
  w.I64(scheduled_us);
  w.I64(running_us);
  w.I64(end_us);
  w.U8(error_kind);
  w.Bytes(error);
}

Status TaskRecord::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&attempt));
  QUANTA_RETURN_IF_ERROR(r.U8(&task_kind));
  QUANTA_RETURN_IF_ERROR(Kind(r, &state));
  QUANTA_RETURN_IF_ERROR(Clipped(r, &name, kMaxName, "name"));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&owner_node));
  QUANTA_RETURN_IF_ERROR(r.U32(&node));
  QUANTA_RETURN_IF_ERROR(r.U32(&worker_pid));
  QUANTA_RETURN_IF_ERROR(r.U64(&worker_id));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &resources));
  QUANTA_RETURN_IF_ERROR(r.I64(&submitted_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&scheduled_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&running_us));
  QUANTA_RETURN_IF_ERROR(r.I64(&end_us));
  QUANTA_RETURN_IF_ERROR(r.U8(&error_kind));
  return Clipped(r, &error, kMaxError, "error");
}

void TaskTableStats::Encode(Writer& w) const {
  w.U64(stored);
  w.U64(capacity);
  w.U64(dropped_on_head);
  w.U64(dropped_on_nodes);
  w.U64(transfers_stored);
  w.U64(transfers_dropped);
}

Status TaskTableStats::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&stored));
  QUANTA_RETURN_IF_ERROR(r.U64(&capacity));
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped_on_head));
  QUANTA_RETURN_IF_ERROR(r.U64(&dropped_on_nodes));
  QUANTA_RETURN_IF_ERROR(r.U64(&transfers_stored));
  return r.U64(&transfers_dropped);
}

void TaskSummaryRow::Encode(Writer& w) const {
  w.Bytes(name);
  w.U8(task_kind);
  for (uint64_t c : counts) w.U64(c);
}

Status TaskSummaryRow::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(Clipped(r, &name, kMaxName, "name"));
  QUANTA_RETURN_IF_ERROR(r.U8(&task_kind));
  for (uint64_t& c : counts) QUANTA_RETURN_IF_ERROR(r.U64(&c));
  return Status::Ok();
}

}  // namespace quanta::protocol
