// A task this node knows about, and the table of them.
//
// The TaskTable is plain shared state: the TaskManager adds and removes entries (it decides a
// task's life), the WorkerDispatcher and the ActorManager read specs and update the fields
// that describe where a task runs. Everything happens on the node's event-loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "protocol/messages.h"

namespace quanta {

struct Task {
  protocol::TaskSpec spec;
  uint64_t submitter = 0;   // local client id that submitted it (0: the node itself, a restart)
  int retries_left = 0;     // re-executions left if its worker dies (-1: forever)
  uint64_t worker = 0;      // client id of the worker it was sent to, while sent
  bool cancelled = false;
  bool force_cancelled = false;
  bool deps_ready = false;  // every argument object is sealed
  std::chrono::steady_clock::time_point started;  // when it became its worker's current task
  // Across nodes (docs/cluster-design.md §6):
  uint32_t owner = 0;         // executing node: the owner's node index (0: this node owns it)
  uint32_t forwarded_to = 0;  // owner: the node running it (0: not forwarded)
  bool via_lane = false;      // owner: an actor call sent on a lane to its worker (actor_lanes.h)
  std::vector<protocol::ObjectValue> remote_args;  // executing node: argument values from the owner
  int fetching = 0;           // arguments whose bytes are being brought to this node
  // Owner-run task: local copies of its stored arguments, pinned (SharedStore::kNodePin) from
  // the moment they are here until it ends, so that none is evicted before its worker gets it.
  std::vector<ObjectID> held_copies;
  std::string kill_reason;    // set when the node kills its worker on purpose (no retry)
  bool timed_out = false;     // ran past spec.timeout_ms; being stopped
  // Streaming generators (GeneratorStreams): items accepted (owner: sealed; executing node: sent
  // on), items the consumer took, and the producer (worker client id, or kToNode | node) last
  // told that count.
  uint64_t generator_items = 0;
  uint64_t generator_consumed = 0;
  uint64_t generator_told = 0;
  static constexpr uint64_t kToNode = 1ull << 63;
  bool is_streaming() const { return spec.generator == protocol::TaskSpec::kStreaming; }
  std::string error_text;     // the traceback its worker sent with a raised exception (task events)
  uint64_t event_seq = 0;     // its entry in the node's TaskEventBuffer (0: none yet)
  bool is_remote() const { return owner != 0; }
};

using TaskTable = std::unordered_map<TaskID, Task, ObjectIDHash>;

// The value every return of a task gets when the system (not user code) fails it.
inline protocol::ObjectValue SystemError(protocol::ObjectKind kind, std::string text) {
  protocol::ObjectValue v;
  v.kind = kind;
  v.data = std::move(text);
  return v;
}

}  // namespace quanta
