// Messages of actor lanes: a direct channel from a caller's node to the worker hosting an actor
// on another node (docs/cluster-design.md §8, node/actor_lanes.h).
//
// Opening a lane: the caller's node connects to the actor's node (TCP, handshake channel
// "lane"), then sends the 24 bytes of a LaneHello (not a frame), and nothing more until the
// worker speaks. The actor's node checks that it hosts the actor on a live worker and that the
// actor takes lanes, and hands the socket to that worker with a LaneAttach frame on the worker's
// Unix connection (the descriptor travels as SCM_RIGHTS with the frame's first byte); otherwise
// it closes the socket. The worker's first frame on the lane is LaneReady; after that the
// caller's node sends LaneCall and CancelTask frames and the worker answers with TaskDone.
// A call whose result the lane cannot carry (stored in the actor node's shared memory, holding
// refs, or its lane broke) is handed to the actor's node instead: LaneAdopt, with the ticket the
// caller's node signed for it, makes it a call forwarded there, and its TaskDone goes there too;
// the result reaches the caller's node as the TaskResult of a forwarded call.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/ids.h"
#include "common/status.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace quanta::protocol {

struct LaneHello {
  static constexpr size_t kSize = 24;  // "QLAN" | 16-byte actor id | u32 caller node (LE)
  ObjectID actor_id;
  uint32_t caller_node = 0;
  std::string Encode() const;
  static Result<LaneHello> Decode(std::string_view bytes);
};

struct LaneAttach {  // node -> worker (the socket rides along)
  ObjectID actor_id;
  uint32_t caller_node = 0;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct LaneReady {  // worker -> caller's node, first on the lane
  ObjectID actor_id;
  uint32_t pid = 0;
  uint64_t worker_id = 0;  // the worker's client id on its node (task events)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// A LaneCall's ticket proves that the caller's node sent this call to this actor (LaneService
// signs and checks it with the cluster token), so a worker can adopt only calls that came to it.
struct LaneCall {  // caller's node -> worker, on the lane
  ExecuteTask call;
  std::string ticket;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct LaneAdopt {  // worker -> its node: this lane call ends the forwarded way
  uint32_t caller_node = 0;
  TaskSpec spec;
  std::string ticket;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

}  // namespace quanta::protocol
