// Values stored once and named by a small id, so that records can hold the id instead of a copy
// (task events keep a function name and a resource map per task). Id 0 is the empty value, and
// also what a value gets once the table is full (the record is then shown without it).
//
// Ownership: a plain value. Thread-safety: none (its owner's thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace quanta {

template <typename T, typename Index = std::map<T, uint32_t>>
class InternTable {
 public:
  explicit InternTable(uint32_t max_values) : max_(max_values), values_(1) {}

  uint32_t Intern(const T& value) {
    if (value == values_[0]) return 0;
    if (values_[last_] == value) return last_;  // most records repeat the previous value
    auto it = ids_.find(value);
    if (it != ids_.end()) return last_ = it->second;
    if (values_.size() >= max_) return 0;
    uint32_t id = static_cast<uint32_t>(values_.size());
    values_.push_back(value);
    ids_.emplace(value, id);
    return last_ = id;
  }
  const T& operator[](uint32_t id) const { return values_[id]; }
  size_t size() const { return values_.size(); }

 private:
  uint32_t max_;
  std::vector<T> values_;  // by id; [0] is the empty value
  Index ids_;
  uint32_t last_ = 0;
};

}  // namespace quanta
