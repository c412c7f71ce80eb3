// Messages about cluster membership: node <-> control service, and the node table that every
// client can ask its node for (GetClusterInfo -> ClusterInfo).
//
//   node -> control   RegisterNode, ResourceUpdate (coalesced), Heartbeat (every 500 ms)
//   control -> node   RegisterNodeReply, HeartbeatAck, NodeTable (on every change), ResourceView
//                     (batched), DrainNode (you were declared dead: exit)
//   tool -> control   GetClusterInfo (messages.h) -> ClusterInfo
// See docs/cluster-design.md §3 and §9-10.
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "protocol/messages.h"

namespace quanta::protocol {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct NodeInfo {
  enum Flags : uint8_t { kHead = 1, kDriverNode = 2 };
  std::string node_id;      // 16 random bytes, hex
  uint32_t node_index = 0;  // assigned by the control service; names the node in object ids
  std::string address;      // IP address peers reach it at ("" for a Unix-only local cluster)
  uint32_t port = 0;        // TCP port of its peer listener (0: none)
  std::string socket_path;  // its Unix socket (for clients on the same host)
  std::string session_dir;
  bool alive = true;
  ResourceMap total;
  ResourceMap available;
  Labels labels;
  uint64_t start_time_ms = 0;  // unix time
  uint64_t incarnation = 0;    // per registration; results from a dead incarnation are dropped
  uint8_t flags = 0;
  std::string death_reason;    // why it is dead, when it is
  bool is_head() const { return flags & kHead; }
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ClusterInfo {
  uint64_t request_id = 0;
  std::vector<NodeInfo> nodes;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct RegisterNode {
  NodeInfo node;  // node_index != 0: rejoin under that index (after losing the control service)
  void Encode(Writer& w) const { node.Encode(w); }
  Status Decode(Reader& r) { return node.Decode(r); }
};

struct RegisterNodeReply {
  bool ok = false;
  uint32_t node_index = 0;
  uint64_t cluster_id = 0;
  uint64_t incarnation = 0;
  uint32_t heartbeat_interval_ms = 500;
  uint32_t heartbeat_timeout_ms = 3000;
  // How long the node waits for a control service that went away, queueing what needs it:
  // > 0 only when the head persists its tables (--storage) and so can take the node back.
  uint32_t reconnect_timeout_ms = 0;
  std::string error;  // why the registration was refused
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ResourceUpdate {
  uint32_t node_index = 0;
  ResourceMap available;
  ResourceMap total;  // changes with placement-group bundles
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct Heartbeat {  // kHeartbeat and kHeartbeatAck
  uint32_t node_index = 0;
  uint64_t sequence = 0;
  void Encode(Writer& w) const {
    w.U32(node_index);
    w.U64(sequence);
  }
  Status Decode(Reader& r) {
    QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
    return r.U64(&sequence);
  }
};

struct NodeTable {  // control -> node: nodes that joined, changed or died (all of them if full)
  bool full = false;
  std::vector<NodeInfo> nodes;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ResourceView {  // control -> node: other nodes' available (and total) resources
  struct Entry {
    uint32_t node_index = 0;
    ResourceMap available, total;
    bool operator==(const Entry& o) const {
      return node_index == o.node_index && available == o.available && total == o.total;
    }
  };
  std::vector<Entry> nodes;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct DrainNode {  // control -> node: it was declared dead and must stop
  std::string reason;
  void Encode(Writer& w) const { w.Bytes(reason); }
  Status Decode(Reader& r) { return r.Bytes(&reason); }
};

// ---------------------------------------------------------------- placement groups

enum class PlacementStrategy : uint8_t { kPack = 0, kSpread = 1, kStrictPack = 2, kStrictSpread = 3 };

struct PlacementGroupSpec {
  ObjectID id;
  std::string name, name_space;
  PlacementStrategy strategy = PlacementStrategy::kPack;
  std::vector<ResourceMap> bundles;
  bool detached = false;
  uint64_t job_id = 0;  // the creating driver: a non-detached group goes with its job
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PlacementGroupInfo {
  enum class State : uint8_t { kPending = 0, kCreated = 1, kRemoved = 2, kRescheduling = 3 };
  PlacementGroupSpec spec;
  State state = State::kPending;
  std::vector<uint32_t> bundle_nodes;  // node index of each bundle once placed
  std::string message;                 // why it is pending, or was removed
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PlacementGroupQuery {  // kGetPlacementGroups; also kRemovePlacementGroup (id only)
  uint64_t request_id = 0;
  ObjectID id;             // nil: by name (or all when the name is empty too)
  std::string name, name_space;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PlacementGroups {  // kPlacementGroups
  uint64_t request_id = 0;
  std::vector<PlacementGroupInfo> groups;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct BundleReservation {  // kReserveBundles (bundles set), kReturnBundles (id only)
  ObjectID group;
  std::vector<std::pair<uint32_t, ResourceMap>> bundles;  // bundle index -> resources
  bool removed = false;  // kReturnBundles: the group is gone for good (its tasks fail)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct BundlesReserved {
  ObjectID group;
  bool ok = false;
  std::string error;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// ---------------------------------------------------------------- actors, names, KV, jobs

// Where an actor lives and in which state (the control service's actor directory).
struct ActorInfo {
  enum class State : uint8_t { kUnknown = 0, kPending = 1, kAlive = 2, kRestarting = 3, kDead = 4 };
  ObjectID actor_id;
  State state = State::kUnknown;
  uint32_t node_index = 0;      // hosting node (while alive)
  uint32_t owner_node = 0;      // node that owns the creation task
  uint64_t job_id = 0;
  std::string class_name, name, name_space;
  bool detached = false;
  uint32_t restarts = 0;
  // Its host would restart it (restarts left): when its node dies, its owner re-creates it on
  // another node instead of the directory declaring it dead (docs/fault-tolerance.md).
  bool restartable = false;
  std::string death_reason;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// A request to the control service that the node only forwards (and routes the reply back).
enum class ControlOp : uint8_t {
  kRegisterName = 1,    // key = namespace, value = name, arg = actor id bytes, blob = handle
  kLookupName = 2,      // key = namespace, value = name -> blob
  kDropName = 3,
  kListNamedActors = 4, // key = namespace ("" and flag: all) -> list
  kKvPut = 10,          // key = namespace, value = key, blob = value, flag = overwrite -> flag: was added
  kKvGet = 11,
  kKvDelete = 12,       // flag = by prefix -> count
  kKvList = 13,         // value = prefix -> list of keys
  kKvExists = 14,
  kGetJobs = 20,        // -> list of jobs (each an encoded JobInfo)
  kGetActors = 21,      // -> list of encoded ActorInfo (arg: an actor id, or all)
  kGetFunction = 22,    // value = function id -> blob
  kGetTasks = 23,       // arg = TaskQuery -> items: TaskRecord, count: rows matched, blob: TaskTableStats
  kSummarizeTasks = 24, // -> items: TaskSummaryRow, blob: TaskTableStats (task_event_messages.h)
  kGetTransfers = 25,   // -> items: TransferEvent (oldest first), blob: TaskTableStats
};

// Ops that only read the control service's tables (what an observer may send).
inline bool IsReadOnly(ControlOp op) {
  switch (op) {
    case ControlOp::kLookupName:
    case ControlOp::kListNamedActors:
    case ControlOp::kKvGet:
    case ControlOp::kKvList:
    case ControlOp::kKvExists:
    case ControlOp::kGetJobs:
    case ControlOp::kGetActors:
    case ControlOp::kGetFunction:
    case ControlOp::kGetTasks:
    case ControlOp::kSummarizeTasks:
    case ControlOp::kGetTransfers:
      return true;
    default:
      return false;
  }
}

struct ControlRequest {
  uint64_t request_id = 0;
  ControlOp op = ControlOp::kLookupName;
  std::string key, value, arg, blob;
  bool flag = false;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ControlReply {
  uint64_t request_id = 0;
  bool ok = false;
  bool flag = false;
  uint64_t count = 0;
  std::string blob, error;
  std::vector<std::string> items;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

enum class JobStatus : uint8_t { kRunning = 0, kSucceeded = 1, kFailed = 2 };

struct JobInfo {
  uint64_t job_id = 0;   // the driver's client id
  uint32_t node_index = 0;
  uint32_t driver_pid = 0;
  std::string entrypoint;
  uint64_t start_time_ms = 0, end_time_ms = 0;
  JobStatus status = JobStatus::kRunning;  // kFailed: its node died under it
  bool finished() const { return status != JobStatus::kRunning; }
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

}  // namespace quanta::protocol
