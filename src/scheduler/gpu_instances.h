// Which of a node's GPUs each running task or actor holds.
//
// A node's aggregate "GPU" amount (in TaskQueue) says how much is free; this class says which
// devices. A demand of one unit or more takes that many whole, wholly free devices (Ray requires
// such demands to be whole numbers); a fraction below one unit takes a share of one device that
// has that much left, preferring the most used one that fits so whole devices stay free for
// whole demands. Shares are fixed point (protocol::kResourceUnit: the whole device).
//
// Ownership: a value owned by the TaskQueue. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace quanta {

using GpuAssignment = std::vector<std::pair<std::string, int64_t>>;  // device id -> share

class GpuInstances {
 public:
  GpuInstances() = default;
  // `ids`: the node's devices, in order (CUDA_VISIBLE_DEVICES ids, or 0..n-1).
  explicit GpuInstances(std::vector<std::string> ids);

  // True if `amount` (fixed point) could be assigned now.
  bool CanAssign(int64_t amount) const { return Pick(amount).has_value(); }
  // Takes `amount` of specific devices; nullopt if they are not free (or amount is a
  // non-whole number of units above one). Zero: an empty assignment.
  std::optional<GpuAssignment> Assign(int64_t amount);
  // Gives an assignment back (ids this node does not have are ignored).
  void Release(const GpuAssignment& a);

  size_t size() const { return ids_.size(); }
  int64_t free_share(size_t i) const { return free_[i]; }

 private:
  std::optional<std::vector<size_t>> Pick(int64_t amount) const;

  std::vector<std::string> ids_;
  std::vector<int64_t> free_;  // per device, fixed point
};

}  // namespace quanta
