// Every message exchanged between Quanta processes, with its binary encoding.
//
// Connections and who sends what (docs/protocol.md has the full table):
//   driver/worker <-> node daemon   (Unix socket on one machine)
//   node daemon   <-> control service
// Each message is one frame (protocol/frame.h) whose type is a MessageType and whose body is
// the struct below encoded with protocol/wire.h. Decode() validates the body completely; an
// error means the peer is broken or hostile and its connection is closed.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "protocol/frame.h"
#include "protocol/wire.h"

namespace quanta::protocol {

enum class MessageType : uint16_t {
  // client (driver or worker) -> node
  kHello = 1,
  kRegisterFunction = 2,
  kSubmitTask = 3,
  kPutObject = 4,
  kSubscribe = 5,
  kRefDeltas = 6,
  kWorkerBlocked = 7,
  kWorkerUnblocked = 8,
  kTaskDone = 9,
  kCancelTask = 10,
  kGetClusterInfo = 11,
  kKillActor = 12,
  kActorName = 13,
  kCreateObject = 14,
  kSubscribePinned = 15,
  kPinDeltas = 16,
  kGetStoreStats = 17,
  kTasksReturned = 18,
  kGetNodeStats = 19,
  kFetchObjects = 20,
  kGetNodeState = 21,          // an observer asks about a node (state_messages.h)
  kGeneratorItem = 22,         // worker -> node: one value a streaming generator yielded
  kGeneratorAck = 23,          // consumer -> node (and node -> worker): items taken so far
  kLaneAdopt = 24,             // worker -> node: a lane call that ends the forwarded way (lane_messages.h)
  // node -> client
  kHelloReply = 32,
  kObjectReady = 33,
  kExecuteTask = 34,
  kLogLines = 35,
  kWarning = 36,
  kClusterInfo = 37,
  kActorNameReply = 38,
  kCreateObjectReply = 39,
  kStoreStats = 40,
  kReturnTasks = 41,
  kNodeStats = 42,
  kNodeState = 43,
  kLaneAttach = 44,            // node -> worker, with the lane's socket (SCM_RIGHTS; lane_messages.h)
  kLaneReady = 45,             // worker -> caller's node: the first frame on a lane
  kLaneCall = 46,              // caller's node -> worker, on a lane: a call and its ticket
  // node <-> control service (cluster_messages.h)
  kRegisterNode = 64,
  kRegisterNodeReply = 65,
  kResourceUpdate = 66,
  kHeartbeat = 67,
  kHeartbeatAck = 68,
  kNodeTable = 69,
  kResourceView = 70,
  kDrainNode = 71,
  kCreatePlacementGroup = 72,  // client -> node -> control
  kRemovePlacementGroup = 73,  // client -> node -> control
  kGetPlacementGroups = 74,    // client -> node -> control
  kPlacementGroups = 75,       // control -> node -> client
  kReserveBundles = 76,        // control -> node
  kBundlesReserved = 77,       // node -> control
  kReturnBundles = 78,         // control -> node
  kJobFinished = 79,           // node -> control: a driver of this node exited; control -> nodes
  kActorUpdate = 80,           // hosting node -> control -> subscribed nodes: where an actor is, its state
  kSubscribeActor = 81,        // node -> control: send me this actor's updates
  kControlRequest = 82,        // client -> node -> control: names, KV, jobs, functions
  kControlReply = 83,          // control -> node -> client
  kJobStarted = 84,            // node -> control: a driver connected
  kTaskEvents = 85,            // node -> control: a batch of task events (task_event_messages.h)
  // node <-> node (peer_messages.h)
  kPeerHello = 96,
  kForwardTask = 97,
  kTaskResult = 98,
  kForwardedLogLines = 99,
  kAddBorrower = 100,
  kBorrowAck = 101,
  kRemoveBorrower = 102,
  kSubscribeObject = 103,
  kObjectInfo = 104,
  kAddLocation = 105,
  kRemoveLocation = 106,
  kFreeObject = 107,
  kPullObject = 108,
  kPullFailed = 109,
  kHandOffDone = 110,
  kKillActorRemote = 111,      // a node -> the actor's node
  kCancelRemote = 112,         // a task's owner -> the node running it
  kPeerStateQuery = 113,       // an observer's node -> the node it asks about (state_messages.h)
  kPeerStateReply = 114,
  kGeneratorItemRemote = 115,  // executing node -> owner: a generator item (GeneratorItem)
  kGeneratorAckRemote = 116,   // owner -> executing node: items taken so far (GeneratorAck)
};

const char* MessageTypeName(MessageType t);

// Resource quantities are fixed-point: 1 CPU == kResourceUnit, so fractional requests like
// num_cpus=0.5 are exact and comparisons never suffer rounding.
inline constexpr int64_t kResourceUnit = 10000;
using ResourceMap = std::vector<std::pair<std::string, int64_t>>;

// How an object's bytes are to be interpreted by the Python layer.
enum class ObjectKind : uint8_t {
  kPickled = 0,        // pickle (protocol 5) of a Python value
  kTaskError = 1,      // pickle of a quanta.exceptions.TaskError raised by user code
  kWorkerCrashed = 2,  // utf-8 text: the worker process died while running the task
  kCancelled = 3,      // utf-8 text: the task was cancelled
  kActorDied = 4,      // utf-8 text: the actor is dead
  kObjectLost = 5,     // utf-8 text: the object can no longer be produced
  kStored = 6,         // the value is in the node's shared-memory store: data is a StoredLocation
  kStoreFull = 7,      // utf-8 text: the store could not make room for the object
  kOwnerDied = 8,      // utf-8 text: the node that owned the object is dead
  kNodeDied = 9,       // utf-8 text: the node running the task died (and no retry was left)
  kUnschedulable = 10, // utf-8 text: no node of the cluster can run the task (timed out)
  kTimedOut = 11,      // utf-8 text: the task ran longer than its timeout_s and was stopped
  kLineageEvicted = 12,       // utf-8 text: lost, and the task that made it is no longer kept
  kReconstructionFailed = 13, // utf-8 text: lost, and the task that made it has no retries left
  kKindCount,
};

// Where a kStored object's bytes are in the shared-memory arena. `pinned` is set on the copies
// the node sends to a reader whose delivery it counted (see object_store/shared_store.h).
struct StoredLocation {
  uint64_t offset = 0;  // meaningful only when `local`
  uint64_t size = 0;
  bool pinned = false;
  bool local = true;    // the bytes are in this node's store (else on other nodes: pull first)
  static constexpr size_t kEncodedSize = 17;
  std::string Encode() const;
  static Result<StoredLocation> Decode(std::string_view data);
};

struct ObjectValue {
  ObjectKind kind = ObjectKind::kPickled;
  std::string data;
  std::vector<ObjectID> nested_refs;  // refs serialised inside `data`; kept alive with it
  bool IsError() const { return kind != ObjectKind::kPickled && kind != ObjectKind::kStored; }
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// kObserver: a tool (the dashboard, `quanta list`) that only reads the cluster's state: it is
// no job, and the node refuses any message from it that would change something.
enum class ClientRole : uint8_t { kDriver = 1, kWorker = 2, kObserver = 3 };

struct Hello {
  ClientRole role = ClientRole::kDriver;
  std::string worker_token;  // for workers: the secret the node gave the process at spawn
  uint32_t pid = 0;          // informational: the node trusts the kernel's SO_PEERCRED pid
  bool log_to_driver = true;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct HelloReply {
  uint64_t client_id = 0;  // unique id of this client; also the creator part of its ObjectIDs
  std::string node_id;
  std::string session_dir;
  std::string store_path;        // shared-memory arena to map (a /proc/<pid>/fd/<n> path)
  uint64_t store_size = 0;
  uint64_t inline_threshold = 0;  // values at least this large go to the store
  uint64_t cluster_id = 0;        // the cluster the node belongs to (refs are valid only there)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct RegisterFunction {
  std::string function_id;  // content hash of `payload`
  std::string payload;      // cloudpickle of the function
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

enum class TaskKind : uint8_t {
  kNormal = 0,         // a remote function call
  kActorCreation = 1,  // constructs an actor; its worker then belongs to the actor
  kActorMethod = 2,    // a method call, run by the actor's worker in submission order
};

// Options of an actor, carried by its creation task.
struct ActorOptions {
  uint32_t max_concurrency = 1;  // calls run at once (threads, or coroutines for async actors)
  int32_t max_restarts = 0;      // restarts after its process dies (-1 = forever)
  bool detached = false;         // outlives its handles and its creator
  bool is_async = false;
  std::string class_name;
  ResourceMap lifetime_resources;  // held while alive (placement uses TaskSpec::resources)
  // Ray's concurrency groups: name -> calls of that group run at once (the worker enforces).
  std::vector<std::pair<std::string, uint32_t>> concurrency_groups;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

using LabelMap = std::vector<std::pair<std::string, std::string>>;

// Where a task may run, as Ray's scheduling strategies say (placement-group tasks are expressed
// through bundle resources instead). Label expressions: "in:a,b", "!in:a,b", "exists", "!exists".
struct SchedulingStrategy {
  enum class Kind : uint8_t { kDefault = 0, kSpread = 1, kNodeAffinity = 2, kNodeLabel = 3 };
  Kind kind = Kind::kDefault;
  std::string node_id;  // kNodeAffinity: the node (hex id)
  bool soft = false;    // kNodeAffinity: may run elsewhere if that node cannot
  LabelMap hard;        // kNodeLabel: every expression must match
  LabelMap soft_labels; // kNodeLabel: preferred
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct TaskSpec {
  TaskID task_id;
  TaskKind kind = TaskKind::kNormal;
  ObjectID actor_id;    // kActorCreation: its own task id; kActorMethod: the target actor
  std::string method;   // kActorMethod only
  std::string concurrency_group;  // kActorMethod only; empty: the default group
  ActorOptions actor;   // kActorCreation only (encoded only for that kind)
  uint64_t job_id = 0;  // client id of the driver the task ultimately belongs to
  std::string function_id;
  std::string name;       // for logs and errors, e.g. "f" or "module.f"
  std::string args_blob;  // pickled (args, kwargs) with placeholders for top-level refs
  std::vector<ObjectID> arg_refs;     // top-level ref arguments, resolved to values first
  std::vector<ObjectID> nested_refs;  // refs inside args_blob; kept alive while the task lives
  uint32_t num_returns = 1;
  ResourceMap resources;
  int32_t max_retries = 3;  // re-executions if the worker process dies (-1 = forever)
  bool retry_exceptions = false;  // re-execute (within max_retries) when user code raises
  // With retry_exceptions: the qualified names of the exception classes to retry, '\n'-separated
  // (empty: every exception). The worker matches them against the raised exception's MRO.
  std::string retry_exception_types;
  uint32_t timeout_ms = 0;  // beyond Ray: stop the task if it runs longer than this (0: no limit)
  SchedulingStrategy scheduling;
  // Streaming generator (Ray's num_returns="streaming"): the task yields items, item k is
  // ReturnId(k + 1); its only return (ReturnId(0)) is sealed when the stream ends (the item
  // count, or the error that ended it). num_returns must be 1.
  enum Generator : uint8_t { kNoGenerator = 0, kStreaming = 1, kDynamic = 2 };  // kDynamic: the worker's concern
  uint8_t generator = kNoGenerator;
  uint32_t generator_backpressure = 0;  // the worker pauses with this many items unconsumed (0: never)
  // Set by the owner's node when it forwards the task: which execution this is (0 first), so
  // the node running it records its events under the same attempt (node/task_events.h).
  uint32_t attempt = 0;
  // Beyond Ray: among ready tasks of the same resource shape on a node, higher runs first
  // (FIFO within a priority). Within [-kMaxPriority, kMaxPriority].
  static constexpr int32_t kMaxPriority = 1000;
  int32_t priority = 0;
  // Runtime environment (Ray's runtime_env), resolved by the submitter: a hash naming it (empty:
  // the node's own environment) and its JSON, which the worker started for it sets up. Workers
  // are pooled by the hash: a worker runs tasks and actors of one environment only.
  std::string runtime_env_hash;  // at most kMaxRuntimeEnvHash bytes
  std::string runtime_env;       // at most kMaxRuntimeEnv bytes
  static constexpr size_t kMaxRuntimeEnvHash = 64;
  static constexpr size_t kMaxRuntimeEnv = 64 * 1024;
  ObjectID ReturnId(uint32_t i) const { return task_id.ReturnId(i); }
  ObjectID ItemId(uint64_t k) const { return task_id.ReturnId(static_cast<uint32_t>(k + 1)); }
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct PutObject {
  ObjectID object_id;
  ObjectValue value;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct IdList {  // kSubscribe
  std::vector<ObjectID> ids;
  void Encode(Writer& w) const { w.Ids(ids); }
  Status Decode(Reader& r) { return r.Ids(&ids); }
};

// Node -> worker: give back up to `count` (0: all) tasks queued at the worker but not started,
// newest first. The worker answers with kTasksReturned (an IdList, possibly empty).
struct ReturnTasks {
  uint32_t count = 0;
  void Encode(Writer& w) const { w.U32(count); }
  Status Decode(Reader& r) { return r.U32(&count); }
};

struct RefDeltas {
  std::vector<std::pair<ObjectID, int32_t>> deltas;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct Empty {  // kWorkerBlocked, kWorkerUnblocked
  void Encode(Writer&) const {}
  Status Decode(Reader&) { return Status::Ok(); }
};

struct TaskDone {
  TaskID task_id;
  std::vector<ObjectValue> returns;
  bool retryable = false;  // the task raised an exception its retry_exceptions allows retrying
  std::string error = {};  // when it raised: the traceback as text (for task events), clipped
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct CancelTask {
  ObjectID object_id;  // any return of the task
  bool force = false;
  bool recursive = true;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct RequestId {  // kGetClusterInfo
  uint64_t request_id = 0;
  void Encode(Writer& w) const { w.U64(request_id); }
  Status Decode(Reader& r) { return r.U64(&request_id); }
};

struct CreateObject {
  uint64_t request_id = 0;
  ObjectID object_id;
  uint64_t size = 0;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct CreateObjectReply {
  uint64_t request_id = 0;
  bool ok = false;
  uint64_t offset = 0;
  std::string error;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct StoreStatsReply {
  uint64_t request_id = 0;
  uint64_t capacity = 0, used = 0, num_in_memory = 0, num_spilled = 0, spilled_bytes = 0;
  uint64_t num_pinned = 0, total_spilled = 0, total_restored = 0;
  uint64_t num_inline = 0, inline_bytes = 0;
  uint64_t total_evicted = 0, num_secondary = 0;
  struct Object {
    ObjectID id;
    uint64_t size = 0;
    uint8_t where = 0;  // 0 inline, 1 shared memory, 2 spilled, 3 pending, 4 primary copy kept
                        // for another node's owner, 5 secondary copy (pulled from another node),
                        // 6 on other nodes only (known here, not fetched)
    int64_t refs = 0;
    int64_t pins = 0;
  };
  std::vector<Object> objects;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// Counters of a node (tasks forwarded, bytes sent to peers, ...), by name.
struct NodeStats {
  uint64_t request_id = 0;
  std::vector<std::pair<std::string, int64_t>> counters;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct KillActor {
  ObjectID actor_id;
  bool no_restart = true;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// Named-actor registry requests (register, look up, or drop a name in a namespace).
enum class ActorNameOp : uint8_t { kRegister = 0, kLookup = 1, kUnregister = 2 };

struct ActorName {
  uint64_t request_id = 0;
  ActorNameOp op = ActorNameOp::kLookup;
  std::string name;
  std::string name_space;
  ObjectID actor_id;        // kRegister
  std::string handle_blob;  // kRegister: pickled handle returned to later lookups
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ActorNameReply {
  uint64_t request_id = 0;
  bool ok = false;          // registered / found
  std::string handle_blob;  // kLookup
  std::string error;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// Streaming generators. Item `index` (from 0) of task `task_id` is its ReturnId(index + 1).
// Worker -> node (kGeneratorItem, handoff 0) and executing node -> owner (kGeneratorItemRemote,
// handoff as in TaskResult). Items arrive in order; a re-run's items the owner has are dropped.
struct GeneratorItem {
  TaskID task_id;
  uint64_t index = 0;
  ObjectValue value;
  uint64_t handoff = 0;
  static constexpr uint64_t kMaxItems = 0xFFFFFFF0ull;  // item ids use the 32-bit return index
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

// The consumer has taken `consumed` items (kMaxItems+: it dropped the generator): backpressure.
struct GeneratorAck {
  TaskID task_id;
  uint64_t consumed = 0;
  void Encode(Writer& w) const {
    w.Id(task_id);
    w.U64(consumed);
  }
  Status Decode(Reader& r) {
    QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
    return r.U64(&consumed);
  }
};

struct ObjectReady {
  ObjectID object_id;
  ObjectValue value;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ExecuteTask {
  TaskSpec spec;
  std::string function_payload;  // empty when the worker already has the function
  std::vector<ObjectValue> args;  // values of spec.arg_refs, in order
  // The GPUs the node assigned to the worker for this task (or its actor): device id and the
  // share of it, fixed point (kResourceUnit: the whole device). Empty: no GPU.
  std::vector<std::pair<std::string, int64_t>> gpus;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct LogLines {
  uint32_t pid = 0;
  std::string task_name;
  bool is_stderr = false;
  std::string text;  // one or more complete lines
  std::string origin;  // the IP of the worker's node when it is not the driver's (else empty)
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct Warning {
  std::string text;
  void Encode(Writer& w) const { w.Bytes(text); }
  Status Decode(Reader& r) { return r.Bytes(&text); }
};

// Encodes `msg` as a complete frame appended to `out`.
template <typename M>
void AppendMessage(std::string* out, MessageType type, const M& msg) {
  size_t header_at = out->size();
  AppendFrameHeader(out, static_cast<uint16_t>(type), 0);
  Writer w(out);
  msg.Encode(w);
  uint32_t body = static_cast<uint32_t>(out->size() - header_at - kFrameHeaderSize);
  std::memcpy(out->data() + header_at, &body, 4);
}

// Decodes a whole frame body into `msg`, requiring that every byte is consumed.
template <typename M>
Status DecodeMessage(std::string_view body, M* msg) {
  Reader r(body);
  QUANTA_RETURN_IF_ERROR(msg->Decode(r));
  return r.ExpectEnd();
}

void EncodeResources(Writer& w, const ResourceMap& m);
Status DecodeResources(Reader& r, ResourceMap* m);

}  // namespace quanta::protocol
