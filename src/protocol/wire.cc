#include "protocol/wire.h"

namespace quanta::protocol {

Status Reader::Raw(void* p, size_t n) {
  if (remaining() < n) {
    return Status::ProtocolError("truncated message: needed " + std::to_string(n) +
                                 " more bytes, " + std::to_string(remaining()) + " left");
  }
  std::memcpy(p, in_.data() + pos_, n);
  pos_ += n;
  return Status::Ok();
}

Status Reader::Bool(bool* v) {
  uint8_t b;
  QUANTA_RETURN_IF_ERROR(U8(&b));
  if (b > 1) return Status::ProtocolError("invalid boolean byte " + std::to_string(b));
  *v = b != 0;
  return Status::Ok();
}

Status Reader::Count(uint32_t* n, size_t min_element_size) {
  QUANTA_RETURN_IF_ERROR(U32(n));
  if (static_cast<uint64_t>(*n) * min_element_size > remaining()) {
    return Status::ProtocolError("element count " + std::to_string(*n) +
                                 " exceeds the bytes left in the message");
  }
  return Status::Ok();
}

Status Reader::Bytes(std::string* s) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(Count(&n, 1));
  s->assign(in_.data() + pos_, n);
  pos_ += n;
  return Status::Ok();
}

Status Reader::Ids(std::vector<ObjectID>* ids) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(Count(&n, ObjectID::kSize));
  ids->resize(n);
  for (auto& id : *ids) QUANTA_RETURN_IF_ERROR(Id(&id));
  return Status::Ok();
}

Status Reader::ExpectEnd() const {
  if (remaining() != 0) {
    return Status::ProtocolError(std::to_string(remaining()) + " unexpected trailing bytes");
  }
  return Status::Ok();
}

}  // namespace quanta::protocol
