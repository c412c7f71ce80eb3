// Messages between node daemons (docs/cluster-design.md §1, §5-7). A node sends them only on
// the connection it opened to the peer (its outbound channel), so each (sender, receiver)
// pair is one FIFO channel.
//
//   PeerHello          first frame on a channel: who is sending
//   ForwardTask        owner -> executing node: a task with its resolved arguments
//   TaskResult         executing node -> owner: the task's return values
//   ForwardedLogLines  executing node -> the driver's node: worker output for that driver
//   AddBorrower / BorrowAck / RemoveBorrower   reference counting with an object's owner
//   SubscribeObject -> ObjectInfo               an object's value or locations, once sealed
//   AddLocation / RemoveLocation / FreeObject   who holds copies; the owner freeing them
//   PullObject / PullFailed                     ask a location for an object's bytes
//   HandOffDone                                 the refs a message carried are registered
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
  std::vector<ObjectValue> args;  // values of spec.arg_refs, in order (stored ones: size only)
  std::vector<std::vector<uint32_t>> arg_locations;  // per argument: nodes holding its bytes
  std::string function_payload;   // empty when the receiver already has spec.function_id
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct TaskResult {
  TaskID task_id;
  uint64_t incarnation = 0;  // the executing node's: results from a dead incarnation are dropped
  std::vector<ObjectValue> returns;  // stored ones stay in the sender's store (their primary copy)
  uint64_t handoff = 0;      // nonzero: answer HandOffDone(handoff) once the returns' refs are held
  // The task did not run: no node held a copy of an argument any more (its owner may rebuild it
  // and place the task again).
  bool args_lost = false;
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

struct BorrowAck {  // owner -> borrower: per id, whether the owner knows it
  std::vector<std::pair<ObjectID, bool>> ids;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ObjectInfo {  // owner -> subscriber
  ObjectID object_id;
  bool known = true;        // false: freed, or never existed
  ObjectValue value;        // inline value, or kStored with the size
  std::vector<uint32_t> locations;  // nodes holding the bytes (stored objects)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PullObject {  // requester -> a location: stream me these bytes on your data channel
  ObjectID object_id;
  uint64_t transfer_id = 0;
  uint64_t size = 0;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PullFailed {  // location -> requester
  uint64_t transfer_id = 0;
  std::string reason;
  void Encode(Writer& w) const {
    w.U64(transfer_id);
    w.Bytes(reason);
  }
  Status Decode(Reader& r) {
    QUANTA_RETURN_IF_ERROR(r.U64(&transfer_id));
    return r.Bytes(&reason);
  }
};

struct HandOff {  // kHandOffDone
  uint64_t handoff = 0;
  void Encode(Writer& w) const { w.U64(handoff); }
  Status Decode(Reader& r) { return r.U64(&handoff); }
};

}  // namespace quanta::protocol
