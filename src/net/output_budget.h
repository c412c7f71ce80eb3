// A shared account of the bytes queued for peers across a group of connections (e.g. all of a
// node's local clients), so that many peers that each stay under their own limit cannot together
// make the daemon queue without bound.
//
// Each connection that joins the group reports its pending output here. While the group's total
// is over the soft limit, a connection that holds more than its fair share (kFairShareBytes)
// stops reading from its peer until it has drained; connections whose peers read their replies
// hold almost nothing and are not affected.
//
// Ownership: shared by the group's connections and whoever made the group.
// Thread-safety: loop thread only (like the connections).
#pragma once

#include <cstddef>

namespace quanta::net {

class OutputBudget {
 public:
  // A connection over the group's soft limit is paused only while it holds more than this.
  static constexpr size_t kFairShareBytes = 1u << 20;

  explicit OutputBudget(size_t soft_limit) : soft_limit_(soft_limit) {}
  OutputBudget(const OutputBudget&) = delete;
  OutputBudget& operator=(const OutputBudget&) = delete;

  // A connection's pending output went from `before` to `after` bytes.
  void Update(size_t before, size_t after) { total_ = total_ - before + after; }
  size_t total() const { return total_; }
  size_t soft_limit() const { return soft_limit_; }
  bool over() const { return total_ > soft_limit_; }
  // Hysteresis: a connection paused by the group resumes once the total is back under half.
  bool over_half() const { return total_ > soft_limit_ / 2; }

 private:
  size_t soft_limit_;
  size_t total_ = 0;
};

}  // namespace quanta::net
