// Framing: every message on every Quanta connection is one frame.
//
//   u32 body_length | u16 protocol_version | u16 message_type | body (body_length bytes)
//
// all little-endian. FrameDecoder accumulates bytes read from a socket and yields complete
// frames; it rejects a frame whose version differs or whose length exceeds the limit, after
// which the connection must be closed (the stream can no longer be trusted).
//
// Thread-safety: none; owned by the connection that reads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace quanta::protocol {

inline constexpr uint16_t kProtocolVersion = 7;
inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr uint32_t kMaxFrameBody = 1u << 30;  // 1 GiB; larger data goes through the store

// Appends a frame header for a body of `body_size` bytes to `out`.
void AppendFrameHeader(std::string* out, uint16_t type, uint32_t body_size);

struct Frame {
  uint16_t type = 0;
  std::string_view body;  // valid until the next call to FrameDecoder::Next or Consume
};

class FrameDecoder {
 public:
  // Frames whose body is larger than this are rejected (a peer that has not authenticated
  // yet gets a small limit; see net::Connection::SetMaxFrameBody).
  void set_max_body(uint32_t max_body) { max_body_ = max_body; }
  uint32_t max_body() const { return max_body_; }
  size_t buffered() const { return end_ - begin_; }
  // Space to read into: at least `min_free` bytes at the returned pointer.
  char* WritableSpace(size_t min_free);
  void Commit(size_t n) { end_ += n; }
  // Frees the buffer if it holds no data and is larger than `keep` bytes.
  void ReleaseIfEmpty(size_t keep) {
    if (begin_ == end_ && buf_.size() > keep) {
      std::string().swap(buf_);
      begin_ = end_ = 0;
    }
  }
  void Append(std::string_view data);

  // Returns true and fills `frame` if a complete frame is buffered; false if more bytes are
  // needed; a non-OK status if the stream is malformed.
  Result<bool> Next(Frame* frame);

 private:
  std::string buf_;
  size_t begin_ = 0;  // start of unconsumed data
  size_t end_ = 0;    // end of valid data
  uint32_t max_body_ = kMaxFrameBody;
};

}  // namespace quanta::protocol
