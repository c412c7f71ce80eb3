// How the control service's tables turn their entries into TableStore rows: the wire encoding
// of the protocol message that describes the entry (so a row reads back exactly as it was sent).
#pragma once

#include <string>
#include <string_view>

#include "protocol/messages.h"

namespace quanta {

template <typename M>
std::string EncodeRow(const M& m) {
  std::string out;
  protocol::Writer w(&out);
  m.Encode(w);
  return out;
}

template <typename M>
Status DecodeRow(std::string_view row, M* m) {
  return protocol::DecodeMessage(row, m);
}

}  // namespace quanta
