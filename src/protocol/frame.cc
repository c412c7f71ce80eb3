#include "protocol/frame.h"

#include <algorithm>
#include <cstring>

namespace quanta::protocol {

void AppendFrameHeader(std::string* out, uint16_t type, uint32_t body_size) {
  char header[kFrameHeaderSize];
  uint16_t version = kProtocolVersion;
  std::memcpy(header, &body_size, 4);
  std::memcpy(header + 4, &version, 2);
  std::memcpy(header + 6, &type, 2);
  out->append(header, kFrameHeaderSize);
}

char* FrameDecoder::WritableSpace(size_t min_free) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buf_.size() - end_ < min_free) {
    if (begin_ > 0) {  // compact before growing
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < min_free) buf_.resize(end_ + min_free);
  }
  return buf_.data() + end_;
}

void FrameDecoder::Append(std::string_view data) {
  std::memcpy(WritableSpace(data.size()), data.data(), data.size());
  Commit(data.size());
}

Result<bool> FrameDecoder::Next(Frame* frame) {
  size_t avail = end_ - begin_;
  if (avail < kFrameHeaderSize) return false;
  const char* p = buf_.data() + begin_;
  uint32_t body_size;
  uint16_t version, type;
  std::memcpy(&body_size, p, 4);
  std::memcpy(&version, p + 4, 2);
  std::memcpy(&type, p + 6, 2);
  if (version != kProtocolVersion) {
    return Status::ProtocolError("frame has protocol version " + std::to_string(version) +
                                 ", expected " + std::to_string(kProtocolVersion));
  }
  if (body_size > max_body_) {
    return Status::ProtocolError("frame body of " + std::to_string(body_size) +
                                 " bytes exceeds the limit of " + std::to_string(max_body_));
  }
  // An incomplete frame: the buffer grows only as its bytes arrive (a header alone never makes
  // us allocate the body it announces).
  if (avail < kFrameHeaderSize + body_size) return false;
  frame->type = type;
  frame->body = std::string_view(buf_.data() + begin_ + kFrameHeaderSize, body_size);
  begin_ += kFrameHeaderSize + body_size;
  return true;
}

}  // namespace quanta::protocol
