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

void ForwardTask::Encode(Writer& w) const {
  spec.Encode(w);
  EncodeValues(w, args);
  w.Bytes(function_payload);
}

Status ForwardTask::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(spec.Decode(r));
  QUANTA_RETURN_IF_ERROR(DecodeValues(r, &args));
  if (args.size() != spec.arg_refs.size()) return Status::ProtocolError("ForwardTask has a value per argument");
  return r.Bytes(&function_payload);
}

void TaskResult::Encode(Writer& w) const {
  w.Id(task_id);
  w.U64(incarnation);
  EncodeValues(w, returns);
}

Status TaskResult::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  return DecodeValues(r, &returns);
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
