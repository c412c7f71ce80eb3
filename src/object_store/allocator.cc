#include "object_store/allocator.h"

namespace quanta {

Allocator::Allocator(uint64_t capacity) : capacity_(capacity / kAlignment * kAlignment) {
  if (capacity_ > 0) InsertFree(0, capacity_);
}

void Allocator::InsertFree(uint64_t offset, uint64_t size) {
  free_by_offset_[offset] = size;
  free_by_size_.insert({size, offset});
}

void Allocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_by_offset_.erase(it);
}

std::optional<uint64_t> Allocator::Allocate(uint64_t size) {
  if (size > capacity_) return std::nullopt;  // also keeps RoundUp from overflowing
  size = RoundUp(size == 0 ? 1 : size);
  // Best fit, lowest offset among equals: keeps reusing the same (already faulted-in) pages.
  auto fit = free_by_size_.lower_bound({size, 0});
  if (fit == free_by_size_.end()) return std::nullopt;
  uint64_t offset = fit->second;
  uint64_t free_size = fit->first;
  EraseFree(free_by_offset_.find(offset));
  if (free_size > size) InsertFree(offset + size, free_size - size);
  allocated_[offset] = size;
  used_ += size;
  return offset;
}

void Allocator::Free(uint64_t offset) {
  auto a = allocated_.find(offset);
  if (a == allocated_.end()) return;
  uint64_t size = a->second;
  allocated_.erase(a);
  used_ -= size;
  // Coalesce with the free neighbours.
  auto next = free_by_offset_.lower_bound(offset);
  if (next != free_by_offset_.end() && next->first == offset + size) {
    size += next->second;
    EraseFree(next);
  }
  auto prev = free_by_offset_.lower_bound(offset);
  if (prev != free_by_offset_.begin()) {
    --prev;
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      size += prev->second;
      EraseFree(prev);
    }
  }
  InsertFree(offset, size);
}

uint64_t Allocator::largest_free() const {
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

}  // namespace quanta
