// Forwards worker output to the driver of the job that produced it, within bounds.
//
// A driver that stops reading (suspended, or just slow) must not make the node buffer its
// workers' output without limit: while the driver's connection has more than `max_pending`
// bytes waiting, or beyond `max_lines_per_second`, lines are dropped and counted, and the
// driver gets one summary line ("... N lines dropped") once it keeps up again. Everything is
// still in the worker's log file.
//
// Ownership: owned by the NodeServer; holds no connection. Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "node/client_registry.h"

namespace quanta {

class LogForwarder {
 public:
  struct Limits {
    size_t max_pending = 8u << 20;        // bytes waiting on the driver's connection
    uint64_t max_lines_per_second = 20000;
  };
  LogForwarder(ClientRegistry* clients, Limits limits) : clients_(clients), limits_(limits) {}

  void Forward(uint64_t driver, protocol::LogLines lines);
  void Forget(uint64_t driver) { drivers_.erase(driver); }
  uint64_t dropped_lines() const { return total_dropped_; }

 private:
  struct PerDriver {
    std::chrono::steady_clock::time_point window_start{};
    uint64_t lines_in_window = 0;
    uint64_t dropped = 0;
  };
  ClientRegistry* clients_;
  Limits limits_;
  std::unordered_map<uint64_t, PerDriver> drivers_;
  uint64_t total_dropped_ = 0;
};

}  // namespace quanta
