// CoreClient: the engine library embedded in every driver and worker process.
//
// It owns the process's connection to its node daemon and everything the process knows about
// objects: a local cache of values it holds references to, the per-process reference counts
// (only 0<->1 transitions are reported to the node, batched), and, in a worker, the queue of
// tasks the node assigned to it. Python calls it through the bindings (src/bindings); the
// Python layer only pickles, unpickles and runs user code.
//
// Threads: a thread that blocks in a call reads the node's messages itself when nobody else is
// (reader_role.h); an internal thread reads when no caller has for a millisecond, and prints
// forwarded worker output. Every public method may be called from any thread (Python threads
// included); the blocking ones (Get, Wait, NextTask, GetClusterInfo) must be called without the GIL.
// Ownership: shared_ptr; the bindings hold one per session.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "core/reader_role.h"
#include "net/spin_budget.h"
#include "core/reply_mailbox.h"
#include "core/worker_lanes.h"
#include "object_store/shared_memory.h"
#include "protocol/frame.h"
#include "protocol/cluster_messages.h"
#include "protocol/messages.h"
#include "protocol/state_messages.h"

namespace quanta {

class CoreClient {
 public:
  struct Options {
    std::string node_socket;
    protocol::ClientRole role = protocol::ClientRole::kDriver;
    std::string worker_token;
    bool log_to_driver = true;
    // How long a caller waiting for one answer may busy-poll before sleeping (ReadOnce); 0: never.
    // Negative: QUANTA_CLIENT_SPIN_US from the environment, else 100.
    int64_t reply_spin_us = -1;
  };
  using ValuePtr = std::shared_ptr<const protocol::ObjectValue>;
  // What Get returns per id: the value, and for objects in shared memory a pointer to their
  // bytes in this process's mapping. For those, the caller holds one "use" of the object and
  // must call ReleaseUse(id) when it no longer reads the bytes.
  struct GotValue {
    ValuePtr value;
    const uint8_t* data = nullptr;
    uint64_t size = 0;
  };

  static Result<std::shared_ptr<CoreClient>> Connect(const Options& options);
  // The reply poll's budget in microseconds: `option` if not negative, else QUANTA_CLIENT_SPIN_US,
  // else 100; an invalid variable is an error that says what it must be.
  static Result<int64_t> ReplySpinMicros(int64_t option);
  // The reply poll's counts so far (any thread): polls made, polls an answer ended, and the budget.
  struct SpinCounts {
    uint64_t spins = 0, caught = 0;
    int64_t budget_us = 0;
  };
  SpinCounts spin_counts() const { return SpinCounts{spins_.load(), spins_caught_.load(), spin_max_us_}; }
  ~CoreClient();
  CoreClient(const CoreClient&) = delete;
  CoreClient& operator=(const CoreClient&) = delete;

  // Closes the connection; blocked callers return Cancelled. Idempotent.
  void Disconnect();
  bool connected() const { return !closed_.load(); }
  uint64_t client_id() const { return client_id_; }
  uint32_t node_index() const { return static_cast<uint32_t>(client_id_ >> 32); }
  const std::string& node_id() const { return node_id_; }
  const std::string& session_dir() const { return session_dir_; }

  TaskID NextTaskId();
  ObjectID NextPutId();

  // Sends the function to the node once per process; later calls are no-ops.
  Status RegisterFunction(const std::string& function_id, const std::string& payload);
  bool IsFunctionRegistered(const std::string& function_id);
  // Submits a task; this process then holds one reference to each of its returns.
  Status SubmitTask(const protocol::TaskSpec& spec);
  // Stores a value under `id`; this process then holds one reference to it.
  Status Put(const ObjectID& id, protocol::ObjectValue value);

  // Waits until every id's value is available (timeout_ms < 0: forever) and returns them.
  // A worker that has to wait tells the node it is blocked, lending its CPU to other tasks.
  Result<std::vector<GotValue>> Get(const std::vector<ObjectID>& ids, int64_t timeout_ms);

  // Shared-memory objects. Create reserves space and returns the offset; the caller writes the
  // object (WriteStored) and then seals it with PutStored or as a task return.
  bool has_store() const { return store_ != nullptr; }
  uint64_t inline_threshold() const { return inline_threshold_; }
  uint64_t cluster_id() const { return cluster_id_; }
  Result<uint64_t> CreateStored(const ObjectID& id, uint64_t size);
  // Copies `size` bytes from `src` to `offset` in the store (in parallel for large copies).
  Status WriteStored(uint64_t offset, const void* src, uint64_t size);
  Status PutStored(const ObjectID& id, uint64_t offset, uint64_t size, std::vector<ObjectID> nested);
  void ReleaseUse(const ObjectID& id);
  // Worker side: an argument in the store delivered with a task (one use held for the caller).
  const uint8_t* StoreData(uint64_t offset) const { return store_->data() + offset; }
  Result<protocol::StoreStatsReply> GetStoreStats(int64_t timeout_ms);
  // Waits until at least `num_ready` ids are available or the timeout passes; returns which.
  Result<std::vector<bool>> Wait(const std::vector<ObjectID>& ids, size_t num_ready,
                                 int64_t timeout_ms, bool fetch_local);

  // Reference counting for ObjectRef objects living in this process.
  void AddLocalRef(const ObjectID& id);
  void RemoveLocalRef(const ObjectID& id);
  size_t NumLocalRefs();

  Status Cancel(const ObjectID& id, bool force, bool recursive);
  Status KillActor(const ObjectID& actor_id, bool no_restart);
  // Named-actor registry round trip (register / look up / drop a name).
  Result<protocol::ActorNameReply> ActorName(protocol::ActorName request, int64_t timeout_ms);
  Result<protocol::ClusterInfo> GetClusterInfo(int64_t timeout_ms);
  Result<protocol::NodeStats> GetNodeStats(int64_t timeout_ms);
  // An observer's question about a node of the cluster (any node: ours relays it).
  Result<protocol::NodeStateReply> GetNodeState(protocol::NodeStateQuery query, int64_t timeout_ms);
  // A request the control service answers (names, KV, jobs, actors), forwarded by the node.
  Result<protocol::ControlReply> ControlCall(protocol::ControlRequest request, int64_t timeout_ms);
  // Placement groups (the control service keeps them; the node forwards).
  Status CreatePlacementGroup(const protocol::PlacementGroupSpec& spec);
  Status RemovePlacementGroup(const ObjectID& id);
  Result<protocol::PlacementGroups> GetPlacementGroups(protocol::PlacementGroupQuery query, int64_t timeout_ms);

  // Streaming generators, consumer side (core_generators.cc). A generator task's items are
  // pushed to its submitter, which holds one reference to each item it was sent until the
  // Python generator hands the item out (the ObjectRef adopts it) or is dropped (released).
  enum class NextItem { kReady, kEnded, kTimedOut };
  // Waits until item `index` is here (kReady: one reference is now the caller's) or the stream
  // ended before it.
  Result<NextItem> GeneratorNext(const TaskID& task, uint64_t index, int64_t timeout_ms);
  // The generator object is gone: items from `next_index` on are released, and so are later ones.
  void GeneratorRelease(const TaskID& task, uint64_t next_index);
  // (items received, stream ended)
  std::pair<uint64_t, bool> GeneratorState(const TaskID& task);
  // Producer side: sends one item; waits (up to timeout_ms) until fewer than `threshold` of the
  // `produced` items are unconsumed; false if that did not happen in time.
  Status SendGeneratorItem(const protocol::GeneratorItem& msg);
  bool GeneratorWait(const TaskID& task, uint64_t produced, uint32_t threshold, int64_t timeout_ms);

  // Worker side: blocks for the next task the node assigns; Cancelled on disconnect.
  Result<protocol::ExecuteTask> NextTask();
  Status TaskDone(const protocol::TaskDone& msg);

 private:
  struct Local {
    int64_t refs = 0;        // ObjectRef instances in this process
    ValuePtr value;
    bool subscribed = false;
    // Shared-memory objects: deliveries the node counted for us (returned when `uses` drops to
    // zero), readers of the bytes in this process, and where the bytes are while pinned.
    int64_t node_pins = 0;
    int64_t uses = 0;
    uint64_t offset = 0, size = 0;
    bool pin_requested = false;
    int pin_waiters = 0;
    std::string pin_error;
    bool Unused() const { return refs == 0 && uses == 0 && node_pins == 0; }
  };

  struct Stream {
    uint64_t received = 0;  // items pushed to us (they arrive in order)
    uint64_t taken = 0;     // items handed out
    bool finished = false;  // its completion object is here
    bool dropped = false;   // the generator object is gone
    bool backpressure = false;
  };
  // Requires mu_. A pushed item of a stream of ours (false: not one).
  bool OnGeneratorItemPushed(const ObjectID& id);
  bool GeneratorItemReady(const ObjectID& id) const;  // for Wait; requires mu_
  void OnGeneratorAck(const protocol::GeneratorAck& msg);

  CoreClient() = default;
  template <typename M>
  Status Send(protocol::MessageType type, const M& msg);
  // Appends pending ref deltas as a frame to `out`. Requires write_mu_.
  void TakeDeltas(std::string* out);
  // Writes pending ref deltas and then `frames` (may be empty), in that order, so the node sees
  // every message in the order this process produced it. Requires write_mu_.
  Status WriteInOrder(const std::string& frames);
  // Reading (core_reader.cc). Waits (mu_ held by `lock`) until a message may have changed what
  // the caller looks at, reading the socket itself if nobody is; returns true if `deadline`
  // (nullptr: none) has passed.
  using Clock = std::chrono::steady_clock;
  // `spin`: the caller waits for one answer that usually comes within microseconds (the value of
  // one get, a request's reply), so the read may busy-poll first (spin_, see ReadOnce).
  bool AwaitProgress(std::unique_lock<std::mutex>& lock, const Clock::time_point* deadline, bool spin = false) {
    return reader_role_.AwaitProgress(lock, deadline, spin);
  }
  // One poll and read of the socket (and of the wake-up eventfd); the caller has the reader role.
  // With `spin`, it first polls without sleeping for up to spin_'s budget: on a VM whose idle
  // vCPU halts, waking this process costs more than the rest of a short call's round trip, and a
  // busy core keeps the node and the worker on the other one (see docs/architecture.md).
  void ReadOnce(std::chrono::microseconds timeout, bool spin);
  void HandleBufferedFrames();
  void OnConnectionLost();
  void BackgroundReader();

  void HandleFrame(const protocol::Frame& frame);
  // Queues a task the node or a lane sent (requires mu_).
  void QueueTask(protocol::ExecuteTask msg);
  // Drops a queued task its sender cancelled, answering it as cancelled (mu_ not held).
  void CancelQueued(const protocol::CancelTask& msg);
  // A worker's actor lanes (worker_lanes.h): a frame on one, and one that closed.
  void HandleLaneFrame(uint64_t lane, const protocol::Frame& frame);
  void OnLaneClosed(uint64_t lane);
  // Hands a lane call to the node (LaneAdopt), so that its result goes that way (mu_ not held).
  Status AdoptLaneCall(WorkerLanes::Route& route);
  // Gives back the argument uses a queued task took when it arrived (requires mu_).
  void ReleaseTaskArgs(const protocol::ExecuteTask& task);
  void PrintLogLines(const protocol::LogLines& msg);
  // Subscribes to ids not yet local (caller holds mu_; sends after unlocking).
  std::vector<ObjectID> CollectMissing(const std::vector<ObjectID>& ids);
  void SetBlocked(bool blocked);
  // Returns the node's pins on `l` if nobody here reads it (requires mu_).
  void MaybeUnpin(const ObjectID& id, Local& l);
  void OnObjectReady(protocol::ObjectReady msg);
  // Sends `msg` under a new request id and waits for its reply (timeout_ms < 0: forever).
  template <typename R, typename M>
  Result<R> Request(protocol::MessageType type, M msg, int64_t timeout_ms, const char* what);
  template <typename R>
  void OnReply(const protocol::Frame& frame);  // keeps a reply for its requester

  int fd_ = -1;
  int wake_fd_ = -1;
  uint64_t client_id_ = 0;
  std::string node_id_;
  std::string session_dir_;
  protocol::ClientRole role_ = protocol::ClientRole::kDriver;
  std::atomic<uint32_t> sequence_{0};
  std::atomic<bool> closed_{false};
  std::thread reader_;

  std::mutex write_mu_;  // serialises writes to fd_; taken before mu_ when both are needed
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<ObjectID, Local, ObjectIDHash> objects_;
  std::unordered_map<ObjectID, int32_t, ObjectIDHash> pending_deltas_;
  std::unordered_map<ObjectID, int32_t, ObjectIDHash> pending_unpins_;
  std::unique_ptr<SharedMemory> store_;
  uint64_t inline_threshold_ = 100 * 1024;
  uint64_t cluster_id_ = 0;
  std::unordered_set<std::string> functions_;
  std::deque<protocol::ExecuteTask> tasks_;
  WorkerLanes lanes_;  // a worker's actor lanes and the calls that came on them (guarded by mu_)
  std::vector<std::pair<std::string, int64_t>> actor_gpus_;  // the hosted actor's devices, for lane calls
  std::unordered_map<TaskID, Stream, ObjectIDHash> streams_;           // generators we consume
  std::unordered_map<TaskID, uint64_t, ObjectIDHash> generator_acks_;  // generators we run: items taken
  TaskID running_task_;  // the plain task NextTask handed out and TaskDone has not reported
  ReplyMailbox replies_;
  int blocked_depth_ = 0;  // nested Get calls from several threads of one worker
  std::string close_reason_;
  // Who reads the socket (guarded by mu_). The decoder and notify_pending_ belong to whoever does.
  net::SpinBudget spin_;  // used by the thread in ReadOnce only (one at a time)
  int64_t spin_max_us_ = 0;
  std::atomic<uint64_t> spins_{0}, spins_caught_{0};  // spin_'s counts, readable from any thread
  ReaderRole reader_role_{&cv_, &closed_, [this](std::chrono::microseconds t, bool spin) { ReadOnce(t, spin); }};
  protocol::FrameDecoder decoder_;
  bool notify_pending_ = false;  // a frame changed state waiters look at
};

}  // namespace quanta
