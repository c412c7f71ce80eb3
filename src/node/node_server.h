// The node daemon's brain: accepts driver and worker connections, tracks tasks and objects,
// schedules ready tasks onto workers, and reports to the control service.
//
// Life of a task here: SubmitTask -> (DependencyTracker until its argument objects are sealed)
// -> TaskQueue (until resources and an idle worker are free) -> ExecuteTask to a worker ->
// TaskDone -> return objects sealed in the ObjectTable and pushed to subscribers (the
// submitter is subscribed to its returns at submission). A worker that dies mid-task makes the
// task retry (max_retries) or fail with a WorkerCrashed error value.
//
// Short tasks are queued at busy workers (node_pipeline.cc): when a function's tasks are known
// to take well under a millisecond and more are waiting than there are idle workers, a worker
// gets several at once, so a burst costs one message and no idle round trip per task. Workers
// give queued tasks back when they block in get() or another worker goes idle.
//
// Ownership: owns every component it wires (object table, scheduler parts, worker pool,
// connections). Thread-safety: single-threaded; everything runs on the event loop thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/connection.h"
#include "net/event_loop.h"
#include "node/actor_table.h"
#include "node/worker_pool.h"
#include "object_store/object_table.h"
#include "object_store/shared_store.h"
#include "scheduler/dependency_tracker.h"
#include "scheduler/task_queue.h"

namespace quanta {

struct NodeOptions {
  std::string session_dir;
  std::string socket_path;          // where drivers and workers connect
  std::string control_socket_path;  // control service
  std::string python;
  ResourceSet resources;
  int prestart_workers = 0;
  uint64_t store_capacity = 0;    // bytes of shared memory for large objects
  uint64_t inline_threshold = 100 * 1024;
  std::string spill_dir;
  int lifeline_fd = -1;  // EOF on this fd (the starting driver died) shuts the node down
  std::vector<std::string> worker_env;
};

class NodeServer {
 public:
  NodeServer(net::EventLoop* loop, NodeOptions options);
  Status Start();
  void Shutdown(const std::string& why);

 private:
  enum class WorkerState { kStarting, kIdle, kBusy };
  struct Client {
    uint64_t id = 0;
    std::shared_ptr<net::Connection> conn;
    protocol::ClientRole role = protocol::ClientRole::kDriver;
    uint32_t pid = 0;
    bool log_to_driver = true;
    std::unordered_map<ObjectID, int64_t, ObjectIDHash> holdings;
    // Workers only:
    uint64_t worker_token = 0;
    WorkerState state = WorkerState::kStarting;
    std::optional<TaskID> current_task;
    std::deque<TaskID> queued;     // sent after current_task, not started (same resource shape)
    bool return_requested = false; // a ReturnTasks is on its way to the worker
    ResourceSet held;          // resources of the running task, unless lent back
    bool lent_back = false;    // blocked in get(): its CPU is free for other tasks
    uint64_t last_job = 0;     // job whose driver receives the worker's output
    std::string last_task_name;
    std::chrono::steady_clock::time_point idle_since;  // while kIdle
    std::unordered_set<std::string> functions;  // function ids already sent to it
    ObjectID actor_id;         // non-nil once the worker hosts an actor (it never returns to the pool)
  };
  struct Task {
    protocol::TaskSpec spec;
    uint64_t submitter = 0;
    int retries_left = 0;
    uint64_t worker = 0;  // client id while running
    bool cancelled = false;
    bool force_cancelled = false;
    bool deps_ready = false;
    std::chrono::steady_clock::time_point started;  // when it became its worker's current task
  };
  // How long a function's tasks take, as seen from here (start to TaskDone).
  struct FunctionTiming {
    double mean_us = 0;
    int samples = 0;
  };

  void OnAccept();
  void OnMessage(net::Connection& conn, const protocol::Frame& frame);
  Status Dispatch(Client& client, const protocol::Frame& frame);
  void OnClientClosed(uint64_t client_id, const Status& why);

  Status OnHello(net::Connection& conn, const protocol::Hello& hello);
  void OnRegisterFunction(protocol::RegisterFunction msg);
  void OnSubmitTask(Client& client, protocol::TaskSpec spec);
  void OnPutObject(Client& client, protocol::PutObject msg);
  void OnSubscribe(Client& client, const std::vector<ObjectID>& ids);
  void OnRefDeltas(Client& client, const protocol::RefDeltas& msg);
  void OnTaskDone(Client& worker, protocol::TaskDone msg);
  void OnTasksReturned(Client& worker, const std::vector<ObjectID>& ids);
  void OnWorkerBlocked(Client& worker);
  void OnWorkerUnblocked(Client& worker);
  void OnCancelTask(const protocol::CancelTask& msg);
  void OnWorkerOutput(uint64_t token, bool is_stderr, std::string text);
  void OnWorkerExit(uint64_t token, int wait_status);
  void OnKillActor(const protocol::KillActor& msg);
  void OnActorName(Client& client, const protocol::ActorName& msg);

  // Shared-memory objects (node_objects.cc)
  void OnCreateObject(Client& client, const protocol::CreateObject& msg);
  void OnSubscribePinned(Client& client, const std::vector<ObjectID>& ids);
  void OnPinDeltas(Client& client, const protocol::RefDeltas& msg);
  void OnGetStoreStats(Client& client, const protocol::RequestId& msg);
  // Checks that a kStored value sealed by `client` refers to an object it created.
  Status AcceptStoredValue(Client& client, const ObjectID& id, const protocol::ObjectValue& value);
  // The value as sent to a client: for stored objects, the current location, pinned for
  // `client` when `pin` is set (an error value if the object cannot be made resident).
  protocol::ObjectValue ValueForClient(const ObjectID& id, const protocol::ObjectValue& value,
                                       Client* client, bool pin);

  // Actors (node_actors.cc)
  void SubmitActorTask(Client& client, const TaskID& id);
  void OnActorTaskDone(Client& worker, protocol::TaskDone msg);
  void OnActorWorkerLost(Client& worker, const Status& why);
  void PumpActor(Actor& actor);
  void KillActorProcess(Actor& actor, const std::string& reason, bool no_restart);
  void MarkActorDead(Actor& actor, const std::string& reason);
  void HandleFreed(const std::vector<ObjectID>& freed);
  void ReplenishPool();
  // Starts one worker unless workers keep dying before they register (a broken Python
  // environment): then drivers are warned once, with the worker's error output, and no more
  // are started, instead of respawning forever.
  bool StartWorker();
  // Ends workers beyond the pool size that have been idle for a while (runs every 500 ms).
  void ExitSurplusIdleWorkers();

  // Task lifecycle
  void MakeReady(const TaskID& id);
  void FinishTask(const TaskID& id, std::vector<protocol::ObjectValue> returns);
  void FailTask(const TaskID& id, const protocol::ObjectValue& error);
  void ScheduleTasks();
  void StartTaskOn(Client& worker, const TaskID& id, ResourceSet demand);
  // The worker now runs `id` (started now; its output is attributed to the task's job).
  void MakeCurrent(Client& worker, const TaskID& id);
  // Sends the task to the worker (arguments resolved and pinned for it).
  void SendTaskTo(Client& worker, const TaskID& id);

  // Queueing short tasks at busy workers (node_pipeline.cc)
  void QueueFollowers(Client& worker, const TaskID& first, const ResourceSet& demand);
  void TopUpBusyWorkers();
  void StealForIdleWorkers();
  void RequestReturn(Client& worker, uint32_t count);
  void RecordDuration(const Task& task);
  bool IsShort(const std::string& function_id) const;
  // Puts tasks a worker had queued (in their queued order) back at the head of the ready queue:
  // the worker is gone or gave them back, and they never started.
  void RequeueTasks(const std::vector<TaskID>& ids);
  void ReleaseWorker(Client& worker);
  void WarnInfeasible();

  // Objects
  void SealObject(const ObjectID& id, protocol::ObjectValue value);
  void ReleaseRefs(const std::vector<ObjectID>& ids);
  void AddHolding(Client& client, const ObjectID& id, int64_t n);
  void SendObject(Client& client, const ObjectID& id, const protocol::ObjectValue& value);

  void ConnectToControl();
  void ReportResources();
  protocol::NodeInfo LocalNodeInfo() const;
  Client* FindClient(uint64_t id);
  Client* FindWorkerByToken(uint64_t token);
  static protocol::ObjectValue SystemError(protocol::ObjectKind kind, std::string text);

  net::EventLoop* loop_;
  NodeOptions options_;
  std::string node_id_;
  int listen_fd_ = -1;
  ObjectTable objects_;
  std::unique_ptr<SharedStore> store_;
  DependencyTracker deps_;
  ActorTable actors_;
  int actor_workers_ = 0;
  TaskQueue queue_;
  WorkerPool pool_;
  std::shared_ptr<net::Connection> control_;
  std::unordered_map<uint64_t, Client> clients_;
  std::unordered_map<uint64_t, uint64_t> token_to_client_;
  // Workers that registered and whose connection closed (killed actor, crash): their process
  // exit is not a failed start.
  std::unordered_set<uint64_t> closed_worker_tokens_;
  std::deque<uint64_t> idle_workers_;
  int starting_workers_ = 0;
  int failed_starts_ = 0;  // workers in a row that exited before registering
  std::unordered_map<TaskID, Task, ObjectIDHash> tasks_;
  std::unordered_map<std::string, FunctionTiming> timings_;  // by function id
  std::unordered_map<std::string, std::string> functions_;
  std::unordered_set<std::string> warned_infeasible_;
  protocol::ResourceMap last_reported_;
  bool shutting_down_ = false;
};

}  // namespace quanta
