// Little-endian binary encoding used inside protocol frames.
//
// Writer appends fixed-width integers, varint-free length-prefixed byte strings and ids to a
// growable buffer. Reader consumes the same, checking bounds on every read: a truncated or
// malformed body yields a ProtocolError Status, never an out-of-bounds access.
//
// Thread-safety: none; one instance per thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/status.h"

namespace quanta::protocol {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  void F64(double v) { Raw(&v, 8); }
  void Bytes(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  void Id(const ObjectID& id) { Raw(id.bytes.data(), ObjectID::kSize); }
  void Ids(const std::vector<ObjectID>& ids) {
    U32(static_cast<uint32_t>(ids.size()));
    for (const auto& id : ids) Id(id);
  }

 private:
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  Status U8(uint8_t* v) { return Raw(v, 1); }
  Status U32(uint32_t* v) { return Raw(v, 4); }
  Status U64(uint64_t* v) { return Raw(v, 8); }
  Status I32(int32_t* v) { return Raw(v, 4); }
  Status I64(int64_t* v) { return Raw(v, 8); }
  Status F64(double* v) { return Raw(v, 8); }
  Status Bool(bool* v);
  Status Bytes(std::string* s);
  Status Id(ObjectID* id) { return Raw(id->bytes.data(), ObjectID::kSize); }
  Status Ids(std::vector<ObjectID>* ids);
  // Reads a u32 element count and checks that at least count*min_element_size bytes remain,
  // so a forged count cannot make the decoder reserve gigabytes.
  Status Count(uint32_t* n, size_t min_element_size);
  size_t remaining() const { return in_.size() - pos_; }
  // A message must be consumed exactly; trailing bytes mean a version mismatch or corruption.
  Status ExpectEnd() const;

 private:
  Status Raw(void* p, size_t n);
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace quanta::protocol
