// The CPU cost of task events per task, outside any cluster: a node's four stages (submitted,
// scheduled, running, finished) recorded into its buffer, encoded into the TaskEvents frame as the
// node ships it, decoded and merged by the head's table (100,000 rows, full: the steady state).
// The minimum of 15 repetitions of 200,000 tasks each, so that other load on the machine does
// not count. Build against a test build tree (cmake -DQUANTA_BUILD_TESTS=ON ... -B BUILD):
//
//   g++ -O2 -std=c++20 -Isrc bench/task_events_cost.cc BUILD/libquanta_node_lib.a \
//       BUILD/libquanta_control_lib.a BUILD/libquanta_net.a BUILD/libquanta_object_store.a \
//       BUILD/libquanta_scheduler.a BUILD/libquanta_protocol.a BUILD/libquanta_common.a \
//       -lcrypto -lpthread -o /tmp/task_events_cost && /tmp/task_events_cost [ROWS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/task_event_table.h"
#include "node/task_events.h"
#include "protocol/messages.h"

using namespace quanta;

int main(int argc, char** argv) {
  constexpr int kTasks = 200000, kReps = 15;
  Task task;
  protocol::TaskSpec& spec = task.spec;
  spec.name = "noop";
  spec.job_id = (uint64_t{1} << 32) | 1;
  spec.resources = {{"CPU", protocol::kResourceUnit}};
  size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  TaskEventTable table(rows);
  double best_node = 1e18, best_head = 1e18;
  uint32_t seq = 1;
  for (int rep = 0; rep < kReps; ++rep) {
    TaskEventBuffer buf({100000, 10000});
    buf.set_node(1);
    std::string frames;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kTasks; ++i) {
      spec.task_id = ObjectID::Make(spec.job_id, seq++, 0);
      task.event_seq = 0;
      buf.Submitted(task);
      buf.Scheduled(task, 1);
      buf.Running(task, 1234, 5);
      buf.Ended(task, nullptr);
      if (buf.batch_ready()) {
        buf.Flush([&](const TaskEventBuffer::Batch& b) {
          protocol::AppendMessage(&frames, protocol::MessageType::kTaskEvents, b);
          return true;
        });
      }
    }
    buf.Flush([&](const TaskEventBuffer::Batch& b) {
      protocol::AppendMessage(&frames, protocol::MessageType::kTaskEvents, b);
      return true;
    });
    auto t1 = std::chrono::steady_clock::now();
    std::string_view rest = frames;  // what the head receives
    while (!rest.empty()) {
      uint32_t len;
      std::memcpy(&len, rest.data(), 4);
      Status st = table.ApplyEncoded(rest.substr(protocol::kFrameHeaderSize, len), 1);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
      rest.remove_prefix(protocol::kFrameHeaderSize + len);
    }
    auto t2 = std::chrono::steady_clock::now();
    best_node = std::min(best_node, std::chrono::duration<double, std::nano>(t1 - t0).count() / kTasks);
    best_head = std::min(best_head, std::chrono::duration<double, std::nano>(t2 - t1).count() / kTasks);
  }
  // What a query of the full table costs (the merge by task id happens then).
  double best_query = 1e18;
  size_t rows_out = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto q0 = std::chrono::steady_clock::now();
    uint64_t matched = 0;
    rows_out = table.Query(protocol::TaskQuery{}, &matched).size();
    best_query = std::min(best_query, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - q0).count());
  }
  std::printf("{\"node_ns_per_task\": %.0f, \"head_ns_per_task\": %.0f, \"total_ns_per_task\": %.0f, "
              "\"rows\": %zu, \"full_query_ms\": %.1f}\n", best_node, best_head, best_node + best_head, rows_out,
              best_query);
  return 0;
}
