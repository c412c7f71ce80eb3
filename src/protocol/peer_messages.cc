#include "protocol/peer_messages.h"

namespace quanta::protocol {

void PeerHello::Encode(Writer& w) const {
  w.U32(node_index);
  w.U64(incarnation);
  w.U64(cluster_id);
}

Status PeerHello::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  return r.U64(&cluster_id);
}

namespace {
void EncodeValues(Writer& w, const std::vector<ObjectValue>& values) {
  w.U32(static_cast<uint32_t>(values.size()));
  for (const auto& v : values) v.Encode(w);
}

Status DecodeValues(Reader& r, std::vector<ObjectValue>* values) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 9));
  values->resize(n);
  for (auto& v : *values) QUANTA_RETURN_IF_ERROR(v.Decode(r));
  return Status::Ok();
}
}  // namespace

namespace {
void EncodeIndexes(Writer& w, const std::vector<uint32_t>& v) {
  w.U32(static_cast<uint32_t>(v.size()));
  for (uint32_t x : v) w.U32(x);
}

Status DecodeIndexes(Reader& r, std::vector<uint32_t>* v) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4));
  v->resize(n);
  for (auto& x : *v) QUANTA_RETURN_IF_ERROR(r.U32(&x));
  return Status::Ok();
}
}  // namespace

void ForwardTask::Encode(Writer& w) const {
  spec.Encode(w);
  EncodeValues(w, args);
  w.U32(static_cast<uint32_t>(arg_locations.size()));
  for (const auto& l : arg_locations) EncodeIndexes(w, l);
  w.Bytes(function_payload);
}

Status ForwardTask::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(spec.Decode(r));
  QUANTA_RETURN_IF_ERROR(DecodeValues(r, &args));
  if (args.size() != spec.arg_refs.size()) return Status::ProtocolError("ForwardTask has a value per argument");
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4));
  if (n != args.size()) return Status::ProtocolError("ForwardTask has a location list per argument");
  arg_locations.resize(n);
  for (auto& l : arg_locations) QUANTA_RETURN_IF_ERROR(DecodeIndexes(r, &l));
  return r.Bytes(&function_payload);
}

void TaskResult::Encode(Writer& w) const {
  w.Id(task_id);
  w.U64(incarnation);
  EncodeValues(w, returns);
  w.U64(handoff);
  w.U8(args_lost);
}

Status TaskResult::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  QUANTA_RETURN_IF_ERROR(DecodeValues(r, &returns));
  QUANTA_RETURN_IF_ERROR(r.U64(&handoff));
  return r.Bool(&args_lost);
}

void BorrowAck::Encode(Writer& w) const {
  w.U32(static_cast<uint32_t>(ids.size()));
  for (const auto& [id, known] : ids) {
    w.Id(id);
    w.U8(known);
  }
}

Status BorrowAck::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 17));
  ids.resize(n);
  for (auto& [id, known] : ids) {
    QUANTA_RETURN_IF_ERROR(r.Id(&id));
    QUANTA_RETURN_IF_ERROR(r.Bool(&known));
  }
  return Status::Ok();
}

void ObjectInfo::Encode(Writer& w) const {
  w.Id(object_id);
  w.U8(known);
  value.Encode(w);
  EncodeIndexes(w, locations);
}

Status ObjectInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&known));
  QUANTA_RETURN_IF_ERROR(value.Decode(r));
  return DecodeIndexes(r, &locations);
}

void PullObject::Encode(Writer& w) const {
  w.Id(object_id);
  w.U64(transfer_id);
  w.U64(size);
}

Status PullObject::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&transfer_id));
  return r.U64(&size);
}

void ForwardedLogLines::Encode(Writer& w) const {
  w.U64(job_id);
  w.Bytes(node_ip);
  lines.Encode(w);
}

Status ForwardedLogLines::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&node_ip));
  return lines.Decode(r);
}

}  // namespace quanta::protocol
