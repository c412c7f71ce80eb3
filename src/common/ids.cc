#include "common/ids.h"

#include <random>

namespace quanta {

ObjectID ObjectID::Make(uint64_t creator, uint32_t sequence, uint32_t index) {
  ObjectID id;
  std::memcpy(id.bytes.data(), &creator, 8);
  std::memcpy(id.bytes.data() + 8, &sequence, 4);
  std::memcpy(id.bytes.data() + 12, &index, 4);
  return id;
}

ObjectID ObjectID::FromBinary(std::string_view b) {
  ObjectID id;
  std::memcpy(id.bytes.data(), b.data(), kSize);
  return id;
}

std::string ObjectID::Hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(kSize * 2);
  for (uint8_t c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

uint64_t ObjectID::Creator() const {
  uint64_t v;
  std::memcpy(&v, bytes.data(), 8);
  return v;
}
uint32_t ObjectID::Sequence() const {
  uint32_t v;
  std::memcpy(&v, bytes.data() + 8, 4);
  return v;
}
uint32_t ObjectID::Index() const {
  uint32_t v;
  std::memcpy(&v, bytes.data() + 12, 4);
  return v;
}
bool ObjectID::IsNil() const {
  for (uint8_t c : bytes)
    if (c) return false;
  return true;
}

uint64_t RandomUniqueId() {
  std::random_device rd;
  uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return v == 0 ? 1 : v;
}

}  // namespace quanta
