// A set of named resource quantities in fixed point (protocol::kResourceUnit per unit).
//
// Used for a node's total and available resources and for a task's demand. Missing names
// mean zero. Available amounts may go negative transiently when a worker that lent its CPU
// back while blocked in get() takes it again (see NodeServer::OnWorkerUnblocked).
//
// Thread-safety: value type.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "protocol/messages.h"

namespace quanta {

class ResourceSet {
 public:
  ResourceSet() = default;
  explicit ResourceSet(const protocol::ResourceMap& m);

  int64_t Get(const std::string& name) const;
  void Set(const std::string& name, int64_t amount);
  // True if every demanded quantity is available.
  bool Contains(const ResourceSet& demand) const;
  void Add(const ResourceSet& other);
  void Subtract(const ResourceSet& other);
  bool IsEmpty() const { return amounts_.empty(); }
  // The names whose demand exceeds this set, e.g. "CPU: 64 (have 2)".
  std::string DescribeShortfall(const ResourceSet& demand) const;
  std::string ToString() const;
  protocol::ResourceMap ToMap() const;  // clamps negative amounts to zero
  const std::map<std::string, int64_t>& amounts() const { return amounts_; }

  bool operator==(const ResourceSet& o) const { return amounts_ == o.amounts_; }
  bool operator<(const ResourceSet& o) const { return amounts_ < o.amounts_; }

 private:
  std::map<std::string, int64_t> amounts_;  // zero entries are erased
};

std::string FormatAmount(int64_t fixed_point);

}  // namespace quanta
