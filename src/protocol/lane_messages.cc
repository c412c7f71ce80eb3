#include "protocol/lane_messages.h"

#include <cstring>

namespace quanta::protocol {

namespace {
constexpr char kLaneMagic[4] = {'Q', 'L', 'A', 'N'};
}

std::string LaneHello::Encode() const {
  std::string out(kLaneMagic, 4);
  out.append(reinterpret_cast<const char*>(actor_id.bytes.data()), ObjectID::kSize);
  char node[4];
  std::memcpy(node, &caller_node, 4);
  out.append(node, 4);
  return out;
}

Result<LaneHello> LaneHello::Decode(std::string_view bytes) {
  if (bytes.size() != kSize || std::memcmp(bytes.data(), kLaneMagic, 4) != 0) {
    return Status::ProtocolError("a lane must start with a LaneHello (\"QLAN\", actor id, caller node)");
  }
  LaneHello h;
  std::memcpy(h.actor_id.bytes.data(), bytes.data() + 4, ObjectID::kSize);
  std::memcpy(&h.caller_node, bytes.data() + 4 + ObjectID::kSize, 4);
  if (h.actor_id.IsNil() || h.caller_node == 0) return Status::ProtocolError("LaneHello names no actor or no node");
  return h;
}

void LaneAttach::Encode(Writer& w) const {
  w.Id(actor_id);
  w.U32(caller_node);
}

Status LaneAttach::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  return r.U32(&caller_node);
}

void LaneReady::Encode(Writer& w) const {
  w.Id(actor_id);
  w.U32(pid);
  w.U64(worker_id);
}

Status LaneReady::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&pid));
  return r.U64(&worker_id);
}

void LaneCall::Encode(Writer& w) const {
  call.Encode(w);
  w.Bytes(ticket);
}

Status LaneCall::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(call.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&ticket));
  return ticket.size() == 16 ? Status::Ok() : Status::ProtocolError("a lane call's ticket must be 16 bytes");
}

void LaneAdopt::Encode(Writer& w) const {
  w.U32(caller_node);
  spec.Encode(w);
  w.Bytes(ticket);
}

Status LaneAdopt::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&caller_node));
  QUANTA_RETURN_IF_ERROR(spec.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&ticket));
  return ticket.size() == 16 ? Status::Ok() : Status::ProtocolError("a lane call's ticket must be 16 bytes");
}

}  // namespace quanta::protocol
