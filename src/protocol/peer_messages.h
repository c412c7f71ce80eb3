// Messages between node daemons (docs/cluster-design.md §1, §5-7). A node sends them only on
// the connection it opened to the peer (its outbound channel), so each (sender, receiver)
// pair is one FIFO channel.
//
//   PeerHello          first frame on a channel: who is sending
//   ForwardTask        owner -> executing node: a task with its resolved arguments
//   TaskResult         executing node -> owner: the task's return values
//   ForwardedLogLines  executing node -> the driver's node: worker output for that driver
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace quanta::protocol {

struct PeerHello {
  uint32_t node_index = 0;
  uint64_t incarnation = 0;
  uint64_t cluster_id = 0;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ForwardTask {
  TaskSpec spec;
  std::vector<ObjectValue> args;  // values of spec.arg_refs, in order
  std::string function_payload;   // empty when the receiver already has spec.function_id
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct TaskResult {
  TaskID task_id;
  uint64_t incarnation = 0;  // the executing node's: results from a dead incarnation are dropped
  std::vector<ObjectValue> returns;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ForwardedLogLines {
  uint64_t job_id = 0;  // the driver's client id (its node index is in the high 32 bits)
  std::string node_ip;  // of the node the worker runs on, shown in the prefix
  LogLines lines;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

}  // namespace quanta::protocol
