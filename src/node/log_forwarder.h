// Forwards worker output to the driver of the job that produced it, within bounds.
//
// A driver that stops reading (suspended, or just slow) must not make the node buffer its
// workers' output without limit: while the driver's connection has more than `max_pending`
// bytes waiting, or beyond `max_lines_per_second`, lines are dropped and counted, and the
// driver gets one summary line ("... N lines dropped") once it keeps up again — with the next
// line forwarded, or from SendPendingNotes (called once per loop iteration) if no more output
// comes. Everything is still in the worker's log file.
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
  // Tells drivers that have caught up how many lines they missed (cheap when none did).
  void SendPendingNotes();
  // Called before the node sends `driver` a value: the note about lines it missed goes first,
  // whatever its backlog, so a program that prints its results and exits still reads it (the
  // note counts only lines dropped before it, so it is never early).
  void NoteBeforeValue(LocalClient& driver);
  void Forget(uint64_t driver);
  uint64_t dropped_lines() const { return total_dropped_; }

 private:
  struct PerDriver {
    std::chrono::steady_clock::time_point window_start{};
    uint64_t lines_in_window = 0;
    uint64_t dropped = 0;          // lines not shown since the last note
    uint32_t dropped_pid = 0;      // the worker, task and node of the last of them
    std::string dropped_task, dropped_origin;
  };
  // Starts a new one-second window if due; true if `lines` more fit in the current one.
  bool WithinRate(PerDriver& d, uint64_t lines);
  void SendDroppedNote(LocalClient& driver, PerDriver& d);
  ClientRegistry* clients_;
  Limits limits_;
  std::unordered_map<uint64_t, PerDriver> drivers_;
  uint64_t total_dropped_ = 0;
  size_t drivers_with_drops_ = 0;
};

}  // namespace quanta
