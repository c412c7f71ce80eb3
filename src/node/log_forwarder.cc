#include "node/log_forwarder.h"

#include <algorithm>

namespace quanta {

void LogForwarder::Forward(uint64_t driver_id, protocol::LogLines msg) {
  LocalClient* driver = clients_->Find(driver_id);
  if (driver == nullptr || !driver->is_driver() || !driver->log_to_driver) return;
  PerDriver& d = drivers_[driver_id];
  auto now = std::chrono::steady_clock::now();
  if (now - d.window_start >= std::chrono::seconds(1)) {
    d.window_start = now;
    d.lines_in_window = 0;
  }
  uint64_t lines = std::max<uint64_t>(1, std::count(msg.text.begin(), msg.text.end(), '\n'));
  bool over_rate = d.lines_in_window + lines > limits_.max_lines_per_second;
  if (over_rate || driver->conn->pending_output() > limits_.max_pending) {
    d.dropped += lines;
    total_dropped_ += lines;
    return;
  }
  d.lines_in_window += lines;
  if (d.dropped > 0) {
    protocol::LogLines note;
    note.pid = msg.pid;
    note.task_name = msg.task_name;
    note.origin = msg.origin;
    note.is_stderr = true;
    note.text = "... " + std::to_string(d.dropped) +
                " lines of worker output were not shown (the driver could not keep up); they are in "
                "the worker log files of the session\n";
    driver->conn->Send(protocol::MessageType::kLogLines, note);
    d.dropped = 0;
  }
  driver->conn->Send(protocol::MessageType::kLogLines, msg);
}

}  // namespace quanta
