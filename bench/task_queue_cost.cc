// The cost of the ready queue per task, outside any cluster: Push then PopRunnable and Release
// for 200,000 tasks of one resource shape on a 4-CPU node (the shape of a burst of plain
// tasks), the minimum of 15 repetitions so other load on the machine does not count. Uses only
// the calls that main had before priorities, so the same file measures both trees:
//
//   g++ -O2 -std=c++20 -ISRC_ROOT/src bench/task_queue_cost.cc SRC_ROOT/src/scheduler/task_queue.cc \
//       SRC_ROOT/src/scheduler/resource_set.cc [SRC_ROOT/src/scheduler/gpu_instances.cc] \
//       SRC_ROOT/src/common/ids.cc -o /tmp/task_queue_cost && /tmp/task_queue_cost
//
// Prints ns per task (push + pop + release).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "scheduler/task_queue.h"

int main() {
  using quanta::ResourceSet;
  constexpr int kTasks = 200000;
  ResourceSet total;
  total.Set("CPU", 4 * quanta::protocol::kResourceUnit);
  ResourceSet demand;
  demand.Set("CPU", quanta::protocol::kResourceUnit);
  std::vector<quanta::TaskID> ids;
  for (int i = 0; i < kTasks; ++i) ids.push_back(quanta::ObjectID::Make(7, static_cast<uint32_t>(i + 1), 0));
  double best = 1e18;
  for (int rep = 0; rep < 15; ++rep) {
    quanta::TaskQueue q(total);
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& id : ids) q.Push(id, demand);
    size_t popped = 0;
    while (auto next = q.PopRunnable()) {
      q.Release(next->second);
      ++popped;
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (popped != ids.size()) return 1;
    best = std::min(best, ns / kTasks);
  }
  std::printf("%.1f\n", best);
  return 0;
}
