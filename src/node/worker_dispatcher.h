// Runs this node's ready tasks on its worker processes.
//
// Owns the local ready queue and resources (TaskQueue) and the state of every registered
// worker (idle, busy with a task and the tasks queued behind it, lent back while blocked in
// get()). Each loop iteration Schedule() pairs runnable tasks with idle workers, sends them
// (ExecuteTask with resolved, pinned arguments) and starts more workers when tasks could run
// but nobody is idle. Workers beyond the pool size exit after a second of idleness.
//
// Short tasks are queued at busy workers (worker_dispatcher_pipeline.cc): when a function's
// tasks are known to take well under a millisecond and more are waiting than there are idle
// workers, a worker gets several at once, so a burst costs one message and no idle round trip
// per task. Workers give queued tasks back when they block in get() or another worker idles.
//
// Runtime environments: every worker belongs to one (its hash, empty for the node's own), and
// a task or actor runs only on a worker of its spec's runtime_env_hash. A runnable task whose
// environment has no idle worker starts one for it (one at a time per environment); idle
// workers beyond the pool size exit after a second, whatever their environment.
//
// It does not decide a task's fate: completions, and the loss of a worker's running task, go
// to the callbacks (the TaskManager decides retry or failure; the ActorManager handles actor
// workers). A worker that hosts an actor is out of the pool for good.
//
// Ownership: owned by the NodeServer; uses the pool, tasks, objects and clients it is given.
// Thread-safety: loop thread only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/event_loop.h"
#include "node/client_registry.h"
#include "node/object_manager.h"
#include "node/task.h"
#include "node/task_events.h"
#include "node/worker_pool.h"
#include "scheduler/task_queue.h"

namespace quanta {

struct Worker {
  enum class State { kIdle, kBusy };
  uint64_t client = 0;  // its LocalClient id
  std::string token;
  pid_t pid = 0;
  State state = State::kIdle;
  std::optional<TaskID> current_task;
  std::deque<TaskID> queued;     // sent after current_task, not started (same resource shape)
  bool return_requested = false; // a ReturnTasks is on its way to the worker
  ResourceSet held;              // resources of the running task, unless lent back
  GpuAssignment gpus;            // the devices of held's GPU amount (kept while lent back)
  bool lent_back = false;        // blocked in get(): all but its GPUs are free for other tasks
  uint64_t last_job = 0;         // job whose driver receives the worker's output
  std::string last_task_name;
  std::chrono::steady_clock::time_point idle_since;  // while kIdle
  std::unordered_set<std::string> functions;  // function ids already sent to it
  ObjectID actor_id;             // non-nil once it hosts an actor (it never returns to the pool)
  std::string env_hash;          // the runtime environment it runs (empty: the node's own)
  bool is_actor() const { return !actor_id.IsNil(); }
};

class WorkerDispatcher {
 public:
  struct Options {
    int pool_size = 0;        // workers kept started (one per CPU)
    std::string log_dir;      // where worker logs are (for error reports)
    TaskEventBuffer* events = nullptr;  // records when tasks start running (none: not recorded)
  };
  struct Callbacks {
    // A plain task's worker reported its result; `retryable`: the task raised an exception its
    // retry_exceptions allows retrying.
    std::function<void(const TaskID&, std::vector<protocol::ObjectValue>, bool retryable)> task_done;
    // A task with timeout_s has run that long on its worker (same attempt as `started`).
    std::function<void(const TaskID&)> task_timed_out;
    // The worker running `task` died (pid, reason); tasks queued behind it were requeued.
    std::function<void(const TaskID& task, pid_t pid, const Status& why)> task_worker_died;
    // A worker hosting an actor went away.
    std::function<void(const Worker&, const Status& why)> actor_worker_lost;
    // An actor-creation task was started on `worker`.
    std::function<void(const ObjectID& actor, Worker&)> actor_placed;
    // Function payloads by id (sent with a worker's first task of that function).
    std::function<const std::string*(const std::string& function_id)> function_payload;
  };

  WorkerDispatcher(net::EventLoop* loop, Options options, ResourceSet resources, WorkerPool* pool,
                   TaskTable* tasks, ObjectManager* objects, ClientRegistry* clients, Callbacks callbacks);

  void Start();  // prestarts the pool and the idle-worker timer
  void Shutdown() { shutting_down_ = true; }

  // The local ready queue.
  void Enqueue(const TaskID& id, const ResourceSet& demand) {
    auto it = tasks_->find(id);
    queue_.Push(id, demand, it == tasks_->end() ? 0 : it->second.spec.priority);
  }
  // The node's GPU device ids (from --gpu-ids), in order.
  void SetGpuIds(std::vector<std::string> ids) { queue_.SetGpuIds(std::move(ids)); }
  bool Remove(const TaskID& id) { return queue_.Remove(id); }
  // Resources joining or leaving this node (placement-group bundles).
  void AddResources(const ResourceSet& r) { queue_.AddTotal(r); }
  void RemoveResources(const ResourceSet& r) { queue_.RemoveTotal(r); }
  // Workers running a task whose demand names a resource containing `fragment`.
  std::vector<uint64_t> WorkersUsing(const std::string& fragment) const;
  // Takes every queued task whose demand this node can never meet (to be placed elsewhere).
  std::vector<TaskID> TakeInfeasible();
  template <typename Accept>
  std::vector<TaskID> TakeNewest(const ResourceSet& demand, size_t max, Accept accept) {
    return queue_.TakeNewest(demand, max, accept);
  }
  const TaskQueue& queue() const { return queue_; }

  // Worker registration and departure (`client` said Hello as a worker with `token`).
  Status OnWorkerHello(LocalClient& client, const std::string& token);
  void OnWorkerClosed(const LocalClient& client, const Status& why);
  void OnProcessExit(const std::string& token, int wait_status, const std::string& stderr_log);

  // Messages from workers.
  Status OnTaskDone(Worker& worker, protocol::TaskDone msg);
  void OnTasksReturned(Worker& worker, const std::vector<ObjectID>& ids);
  void OnBlocked(Worker& worker);
  void OnUnblocked(Worker& worker);

  // Cancels a plain task that was sent to a worker (queued there or running).
  void CancelSent(Task& task, const protocol::CancelTask& msg);
  void SendCancel(Worker& worker, const protocol::CancelTask& msg);
  // SIGKILLs the worker a task was sent to (the task is lost with it; tasks queued behind it
  // go back to the ready queue).
  void KillWorkerRunning(const Task& task);
  // Interrupts the task running on its worker (KeyboardInterrupt); if the same attempt still
  // runs after `grace`, kills the worker.
  void Interrupt(const Task& task, std::chrono::milliseconds grace);

  // Pairs runnable tasks with idle workers (end of every loop iteration).
  void Schedule();

  Worker* Find(uint64_t client);
  Worker* FindByToken(const std::string& token);
  // Actors: swap what an actor's worker holds (placement demand -> lifetime resources).
  void SwapHeld(Worker& worker, const ResourceSet& now_held);
  void Kill(const Worker& worker, int signal) { pool_->Kill(worker.token, signal); }
  // Keeps `pool_size` pool workers started (after one became an actor's).
  void ReplenishPool();
  // Sends `msg` to the worker with its arguments resolved and pinned for it.
  void SendExecute(Worker& worker, const TaskID& id);

  size_t num_workers() const { return workers_.size(); }

 private:
  void StartTaskOn(Worker& worker, const TaskID& id, ResourceSet demand);
  void MakeCurrent(Worker& worker, const TaskID& id);
  void ReleaseWorker(Worker& worker);
  // What a worker gives back while blocked in get() (all but its GPUs, which its task keeps
  // using, as in Ray), and what it keeps.
  static ResourceSet Lendable(const ResourceSet& held);
  static ResourceSet Kept(const ResourceSet& held);
  // Gives back everything the worker holds now (its lent part is already back) and its GPUs.
  void ReleaseHeld(Worker& worker);
  void RequeueTasks(const std::vector<TaskID>& ids);
  // Starts one worker unless workers keep dying before they register (a broken Python
  // environment): then drivers are warned once, with the worker's error output, and no more
  // are started, instead of respawning forever.
  bool StartWorker(const std::string& env_hash = "", const std::string& env_json = "");
  // The most recently used idle worker of `env_hash` (taken off the idle list), or null.
  Worker* TakeIdle(const std::string& env_hash);
  bool HasIdle(const std::string& env_hash) const;
  void StartFinished(const std::string& token);  // registered or died: no longer starting
  void ExitSurplusIdleWorkers();
  void WarnInfeasible();

  // Short tasks queued at busy workers (worker_dispatcher_pipeline.cc).
  void QueueFollowers(Worker& worker, const TaskID& first, const ResourceSet& demand);
  void TopUpBusyWorkers();
  void StealForIdleWorkers();
  void RequestReturn(Worker& worker, uint32_t count);
  void RecordDuration(const Task& task);
  bool IsShort(const std::string& function_id) const;

  struct FunctionTiming {  // how long a function's tasks take here (start to TaskDone)
    double mean_us = 0;
    int samples = 0;
  };

  net::EventLoop* loop_;
  Options options_;
  TaskQueue queue_;
  WorkerPool* pool_;
  TaskTable* tasks_;
  ObjectManager* objects_;
  ClientRegistry* clients_;
  Callbacks callbacks_;
  std::unordered_map<uint64_t, Worker> workers_;  // by client id
  std::unordered_map<std::string, uint64_t> token_to_client_;
  // Workers that registered and whose connection closed: their exit is not a failed start.
  std::unordered_set<std::string> closed_tokens_;
  std::deque<uint64_t> idle_;  // idle workers, least recently used first
  int starting_ = 0;  // workers of the node's own environment started, not yet registered
  std::unordered_map<std::string, int> starting_envs_;  // the same, by runtime-env hash
  std::unordered_map<std::string, std::string> starting_tokens_;  // token -> env hash, until Hello or exit
  std::unordered_map<std::string, int> env_failed_starts_;  // env hash -> workers in a row that died before Hello
  // Environments whose workers keep dying before Hello -> the error their normal tasks fail with.
  std::unordered_map<std::string, std::string> broken_envs_;
  int failed_starts_ = 0;  // workers in a row that exited before registering
  int actor_workers_ = 0;
  std::unordered_map<std::string, FunctionTiming> timings_;
  std::unordered_set<std::string> warned_infeasible_;
  bool shutting_down_ = false;
};

}  // namespace quanta
