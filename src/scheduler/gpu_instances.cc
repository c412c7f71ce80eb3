#include "scheduler/gpu_instances.h"

#include <algorithm>

#include "protocol/messages.h"

namespace quanta {

using protocol::kResourceUnit;

GpuInstances::GpuInstances(std::vector<std::string> ids) : ids_(std::move(ids)), free_(ids_.size(), kResourceUnit) {}

std::optional<std::vector<size_t>> GpuInstances::Pick(int64_t amount) const {
  std::vector<size_t> out;
  if (amount <= 0) return out;
  if (amount >= kResourceUnit) {
    if (amount % kResourceUnit != 0) return std::nullopt;
    size_t want = static_cast<size_t>(amount / kResourceUnit);
    for (size_t i = 0; i < free_.size() && out.size() < want; ++i) {
      if (free_[i] == kResourceUnit) out.push_back(i);
    }
    if (out.size() < want) return std::nullopt;
    return out;
  }
  std::optional<size_t> best;
  for (size_t i = 0; i < free_.size(); ++i) {
    if (free_[i] >= amount && (!best || free_[i] < free_[*best])) best = i;
  }
  if (!best) return std::nullopt;
  out.push_back(*best);
  return out;
}

std::optional<GpuAssignment> GpuInstances::Assign(int64_t amount) {
  auto picked = Pick(amount);
  if (!picked) return std::nullopt;
  GpuAssignment a;
  int64_t share = amount >= kResourceUnit ? kResourceUnit : amount;
  for (size_t i : *picked) {
    free_[i] -= share;
    a.emplace_back(ids_[i], share);
  }
  return a;
}

void GpuInstances::Release(const GpuAssignment& a) {
  for (const auto& [id, share] : a) {
    for (size_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] == id) {
        free_[i] = std::min(kResourceUnit, free_[i] + share);
        break;
      }
    }
  }
}

}  // namespace quanta
