#include "node/log_forwarder.h"

#include <algorithm>

namespace quanta {

bool LogForwarder::WithinRate(PerDriver& d, uint64_t lines) {
  auto now = std::chrono::steady_clock::now();
  if (now - d.window_start >= std::chrono::seconds(1)) {
    d.window_start = now;
    d.lines_in_window = 0;
  }
  return d.lines_in_window + lines <= limits_.max_lines_per_second;
}

void LogForwarder::SendDroppedNote(LocalClient& driver, PerDriver& d) {
  protocol::LogLines note;
  note.pid = d.dropped_pid;
  note.task_name = d.dropped_task;
  note.origin = d.dropped_origin;
  note.is_stderr = true;
  note.text = "... " + std::to_string(d.dropped) +
              " lines of worker output were not shown (the driver could not keep up); they are in "
              "the worker log files of the session\n";
  driver.conn->Send(protocol::MessageType::kLogLines, note);
  d.lines_in_window += 1;
  d.dropped = 0;
  --drivers_with_drops_;
}

void LogForwarder::Forward(uint64_t driver_id, protocol::LogLines msg) {
  LocalClient* driver = clients_->Find(driver_id);
  if (driver == nullptr || !driver->is_driver() || !driver->log_to_driver) return;
  PerDriver& d = drivers_[driver_id];
  uint64_t lines = std::max<uint64_t>(1, std::count(msg.text.begin(), msg.text.end(), '\n'));
  bool over_rate = !WithinRate(d, lines);
  if (over_rate || driver->conn->pending_output() > limits_.max_pending) {
    if (d.dropped == 0) ++drivers_with_drops_;
    d.dropped += lines;
    d.dropped_pid = msg.pid;
    d.dropped_task = msg.task_name;
    d.dropped_origin = msg.origin;
    total_dropped_ += lines;
    return;
  }
  d.lines_in_window += lines;
  if (d.dropped > 0) SendDroppedNote(*driver, d);
  driver->conn->Send(protocol::MessageType::kLogLines, msg);
}

void LogForwarder::SendPendingNotes() {
  if (drivers_with_drops_ == 0) return;
  for (auto& [id, d] : drivers_) {
    if (d.dropped == 0) continue;
    LocalClient* driver = clients_->Find(id);
    if (driver == nullptr || driver->conn->pending_output() > limits_.max_pending || !WithinRate(d, 1)) continue;
    SendDroppedNote(*driver, d);
  }
}

void LogForwarder::NoteBeforeValue(LocalClient& driver) {
  if (drivers_with_drops_ == 0 || !driver.is_driver()) return;
  auto it = drivers_.find(driver.id);
  if (it == drivers_.end() || it->second.dropped == 0) return;
  SendDroppedNote(driver, it->second);
}

void LogForwarder::Forget(uint64_t driver) {
  auto it = drivers_.find(driver);
  if (it == drivers_.end()) return;
  if (it->second.dropped > 0) --drivers_with_drops_;
  drivers_.erase(it);
}

}  // namespace quanta
