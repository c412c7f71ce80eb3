// Space management for the node's shared-memory arena: best-fit allocation of aligned
// ranges with coalescing of adjacent free ranges.
//
// Offsets are relative to the arena start; every allocation is rounded up to kAlignment so
// buffers handed to numpy are suitably aligned. The allocator only does bookkeeping: it never
// touches the memory.
//
// Ownership: owned by the SharedMemoryStore. Thread-safety: none (loop thread only).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace quanta {

class Allocator {
 public:
  static constexpr uint64_t kAlignment = 64;

  explicit Allocator(uint64_t capacity);

  // Returns the offset of a free range of at least `size` bytes, or nullopt if none is large
  // enough (the caller may free something and retry).
  std::optional<uint64_t> Allocate(uint64_t size);
  // Returns the range that Allocate returned at `offset` to the free space.
  void Free(uint64_t offset);

  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_; }
  uint64_t largest_free() const;
  static uint64_t RoundUp(uint64_t size) { return (size + kAlignment - 1) / kAlignment * kAlignment; }

 private:
  void InsertFree(uint64_t offset, uint64_t size);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  uint64_t capacity_;
  uint64_t used_ = 0;
  std::map<uint64_t, uint64_t> free_by_offset_;             // offset -> size
  std::set<std::pair<uint64_t, uint64_t>> free_by_size_;    // (size, offset)
  std::map<uint64_t, uint64_t> allocated_;                  // offset -> size
};

}  // namespace quanta
