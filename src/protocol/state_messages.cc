#include "protocol/state_messages.h"

namespace quanta::protocol {

void NodeStateQuery::Encode(Writer& w) const {
  w.U64(request_id);
  w.U32(node_index);
  w.U8(static_cast<uint8_t>(kind));
  w.Bytes(arg);
  w.I64(offset);
  w.U64(limit);
}

Status NodeStateQuery::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  uint8_t k;
  QUANTA_RETURN_IF_ERROR(r.U8(&k));
  if (k < 1 || k > 5) return Status::ProtocolError("unknown node-state kind " + std::to_string(k));
  kind = static_cast<StateKind>(k);
  QUANTA_RETURN_IF_ERROR(r.Bytes(&arg));
  if (arg.size() > 4096) return Status::ProtocolError("node-state argument too long");
  QUANTA_RETURN_IF_ERROR(r.I64(&offset));
  return r.U64(&limit);
}

void NodeStateReply::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(ok ? 1 : 0);
  w.U8(unavailable ? 1 : 0);
  w.Bytes(error);
  w.U32(node_index);
  w.U64(size);
  w.U64(offset);
  w.Bytes(body);
}

Status NodeStateReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.Bool(&unavailable));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&error));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U64(&size));
  QUANTA_RETURN_IF_ERROR(r.U64(&offset));
  return r.Bytes(&body);
}

void ProcessInfo::Encode(Writer& w) const {
  w.U64(client_id);
  w.U32(pid);
  w.U8(static_cast<uint8_t>(role));
  w.U8(static_cast<uint8_t>(state));
  w.Id(actor_id);
  w.Id(task_id);
  w.Bytes(task_name);
  w.U64(job_id);
  w.U32(queued);
  w.Bytes(stdout_log);
  w.Bytes(stderr_log);
}

Status ProcessInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&client_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&pid));
  uint8_t ro, st;
  QUANTA_RETURN_IF_ERROR(r.U8(&ro));
  if (ro < 1 || ro > 3) return Status::ProtocolError("unknown client role " + std::to_string(ro));
  role = static_cast<ClientRole>(ro);
  QUANTA_RETURN_IF_ERROR(r.U8(&st));
  if (st > 5) return Status::ProtocolError("unknown process state " + std::to_string(st));
  state = static_cast<State>(st);
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&task_name));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&queued));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&stdout_log));
  return r.Bytes(&stderr_log);
}

void ProcessList::Encode(Writer& w) const {
  w.U32(static_cast<uint32_t>(processes.size()));
  for (const auto& p : processes) p.Encode(w);
}

Status ProcessList::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8 + 4 + 2 + 2 * ObjectID::kSize + 4 + 8 + 4 + 8));
  processes.resize(n);
  for (auto& p : processes) QUANTA_RETURN_IF_ERROR(p.Decode(r));
  return Status::Ok();
}

void LogFileList::Encode(Writer& w) const {
  w.U32(static_cast<uint32_t>(files.size()));
  for (const auto& f : files) {
    w.Bytes(f.name);
    w.U64(f.size);
    w.U64(f.mtime_ms);
  }
}

Status LogFileList::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4 + 16));
  files.resize(n);
  for (auto& f : files) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&f.name));
    QUANTA_RETURN_IF_ERROR(r.U64(&f.size));
    QUANTA_RETURN_IF_ERROR(r.U64(&f.mtime_ms));
  }
  return Status::Ok();
}

}  // namespace quanta::protocol
