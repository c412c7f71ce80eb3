#include "node/worker_dispatcher.h"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "common/logging.h"

namespace quanta {

using protocol::MessageType;
using protocol::ObjectKind;
using protocol::ObjectValue;

namespace {

constexpr int kMaxFailedStarts = 5;
// As Ray does: workers beyond the pool size (started while others were blocked in get()) exit
// once they have been idle this long, least recently used first.
constexpr auto kIdleWorkerExitAfter = std::chrono::milliseconds(1000);
constexpr auto kIdleCheckInterval = std::chrono::milliseconds(500);

std::string TailOfFile(const std::string& path, size_t max_bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return data.size() > max_bytes ? data.substr(data.size() - max_bytes) : data;
}

}  // namespace

WorkerDispatcher::WorkerDispatcher(net::EventLoop* loop, Options options, ResourceSet resources, WorkerPool* pool,
                                   TaskTable* tasks, ObjectManager* objects, ClientRegistry* clients,
                                   Callbacks callbacks)
    : loop_(loop),
      options_(std::move(options)),
      queue_(std::move(resources)),
      pool_(pool),
      tasks_(tasks),
      objects_(objects),
      clients_(clients),
      callbacks_(std::move(callbacks)) {}

void WorkerDispatcher::Start() {
  for (int i = 0; i < options_.pool_size; ++i) StartWorker();
  ExitSurplusIdleWorkers();
}

Worker* WorkerDispatcher::Find(uint64_t client) {
  auto it = workers_.find(client);
  return it == workers_.end() ? nullptr : &it->second;
}

Worker* WorkerDispatcher::FindByToken(const std::string& token) {
  auto it = token_to_client_.find(token);
  return it == token_to_client_.end() ? nullptr : Find(it->second);
}

Status WorkerDispatcher::OnWorkerHello(LocalClient& client, const std::string& token) {
  // The token is a secret the node gave only to the process it started, and the kernel tells
  // us the connecting pid: both must match one of our workers, which registers only once.
  pid_t pid = pool_->PidOf(token);
  if (pid == 0 || token_to_client_.count(token)) {
    return Status::ProtocolError("Hello as a worker with a token this node did not issue");
  }
  if (pid != client.pid) {
    return Status::ProtocolError("worker token presented by pid " + std::to_string(client.pid) +
                                 ", but it was issued to pid " + std::to_string(pid));
  }
  Worker& w = workers_[client.id];
  w.client = client.id;
  w.token = token;
  w.pid = pid;
  w.idle_since = std::chrono::steady_clock::now();
  w.env_hash = pool_->EnvOf(token);
  if (!w.env_hash.empty()) env_failed_starts_.erase(w.env_hash);
  token_to_client_[token] = client.id;
  failed_starts_ = 0;
  StartFinished(token);
  idle_.push_back(client.id);
  return Status::Ok();
}

void WorkerDispatcher::OnWorkerClosed(const LocalClient& client, const Status& why) {
  auto it = workers_.find(client.id);
  if (it == workers_.end()) return;
  Worker w = std::move(it->second);
  workers_.erase(it);
  token_to_client_.erase(w.token);
  // Its exit (if not seen yet) is expected, not a failed start.
  if (pool_->PidOf(w.token) != 0) closed_tokens_.insert(w.token);
  idle_.erase(std::remove(idle_.begin(), idle_.end(), client.id), idle_.end());
  pool_->Kill(w.token, SIGKILL);
  ReleaseHeld(w);
  // Queued tasks never started: back to the ready queue, no retry used.
  RequeueTasks(std::vector<TaskID>(w.queued.begin(), w.queued.end()));
  if (w.is_actor()) {
    --actor_workers_;
    callbacks_.actor_worker_lost(w, why);
  } else if (w.current_task) {
    callbacks_.task_worker_died(*w.current_task, w.pid, why);
  }
  ReplenishPool();
}

void WorkerDispatcher::OnProcessExit(const std::string& token, int wait_status, const std::string& stderr_log) {
  Worker* worker = FindByToken(token);
  if (worker == nullptr && closed_tokens_.erase(token) > 0) return;  // registered, then closed
  if (worker == nullptr) {
    // Died before it said Hello.
    auto starting = starting_tokens_.find(token);
    std::string env = starting == starting_tokens_.end() ? std::string() : starting->second;
    StartFinished(token);
    QLOG(kWarning) << "a worker exited before registering (status " << wait_status << "); see its log in "
                   << options_.log_dir;
    if (!env.empty()) {
      // A runtime environment's worker reports setup failures to its task; dying before
      // Hello is its own interpreter failing, which must not stop the node's other workers.
      // After a few in a row its tasks fail instead of workers being respawned forever.
      if (++env_failed_starts_[env] >= kMaxFailedStarts && broken_envs_.count(env) == 0) {
        std::string text = "workers started for this task's runtime_env exit before they can run anything (" +
                           std::to_string(kMaxFailedStarts) + " in a row); the last one printed:\n" +
                           TailOfFile(stderr_log) + "\n(logs: " + options_.log_dir + ")";
        QLOG(kError) << text;
        clients_->WarnDrivers(text);
        broken_envs_[env] = std::move(text);
      }
      return;
    }
    if (++failed_starts_ == kMaxFailedStarts) {
      std::string err = TailOfFile(stderr_log);
      std::string text = "worker processes exit before they can start (" + std::to_string(kMaxFailedStarts) +
                         " in a row); no more will be started and tasks stay pending. The last one "
                         "printed:\n" + err + "\n(logs: " + options_.log_dir + ")";
      QLOG(kError) << text;
      clients_->WarnDrivers(text);
    }
    return;
  }
  LocalClient* client = clients_->Find(worker->client);
  if (client != nullptr && !client->conn->closed()) client->conn->Close(Status::IOError("worker process exited"));
}

bool WorkerDispatcher::StartWorker(const std::string& env_hash, const std::string& env_json) {
  if (failed_starts_ >= kMaxFailedStarts || shutting_down_) return false;
  auto token = pool_->Start(env_hash, env_json);
  if (!token.ok()) return false;
  starting_tokens_[*token] = env_hash;
  if (env_hash.empty()) {
    ++starting_;
  } else {
    ++starting_envs_[env_hash];
  }
  return true;
}

void WorkerDispatcher::StartFinished(const std::string& token) {
  auto t = starting_tokens_.find(token);
  if (t == starting_tokens_.end()) return;
  if (t->second.empty()) {
    if (starting_ > 0) --starting_;
  } else if (auto s = starting_envs_.find(t->second); s != starting_envs_.end() && --s->second <= 0) {
    starting_envs_.erase(s);
  }
  starting_tokens_.erase(t);
}

bool WorkerDispatcher::HasIdle(const std::string& env_hash) const {
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    auto w = workers_.find(*it);
    if (w != workers_.end() && w->second.state == Worker::State::kIdle && w->second.env_hash == env_hash) return true;
  }
  return false;
}

Worker* WorkerDispatcher::TakeIdle(const std::string& env_hash) {
  for (auto it = idle_.end(); it != idle_.begin();) {
    --it;
    Worker* w = Find(*it);
    if (w == nullptr || w->state != Worker::State::kIdle) {  // stale entry
      it = idle_.erase(it);
      continue;
    }
    if (w->env_hash == env_hash) {
      idle_.erase(it);
      return w;
    }
  }
  return nullptr;
}

void WorkerDispatcher::ReplenishPool() {
  if (shutting_down_) return;
  int pool_workers = static_cast<int>(pool_->num_processes()) - actor_workers_;
  while (pool_workers < options_.pool_size) {
    if (!StartWorker()) break;
    ++pool_workers;
  }
}

void WorkerDispatcher::ExitSurplusIdleWorkers() {
  loop_->RunAfter(kIdleCheckInterval, [this] { ExitSurplusIdleWorkers(); });
  if (shutting_down_) return;
  // While tasks wait, workers of the node's own environment stay (they will be wanted soon);
  // a runtime environment's worker idle this long has nothing of its environment to run.
  bool tasks_wait = queue_.size() != 0;
  int pool_workers = static_cast<int>(pool_->num_processes()) - actor_workers_;
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> surplus;
  for (uint64_t id : idle_) {  // least recently used first
    if (pool_workers - static_cast<int>(surplus.size()) <= options_.pool_size) break;
    Worker* w = Find(id);
    if (w != nullptr && w->state == Worker::State::kIdle && now - w->idle_since >= kIdleWorkerExitAfter &&
        !(tasks_wait && w->env_hash.empty())) {
      surplus.push_back(id);
    }
  }
  for (uint64_t id : surplus) {
    if (LocalClient* c = clients_->Find(id)) c->conn->Close(Status::Cancelled("idle worker beyond the pool size exits"));
  }
}

void WorkerDispatcher::Schedule() {
  if (shutting_down_) return;
  // Runtime environments whose runnable head task found no idle worker of its own: hash -> JSON.
  std::unordered_map<std::string, std::string> unserved;
  while (queue_.HasRunnable()) {
    auto next = queue_.PopRunnable([&](const TaskID& id) {
      const protocol::TaskSpec& spec = tasks_->at(id).spec;
      if (HasIdle(spec.runtime_env_hash)) return true;
      if (!spec.runtime_env_hash.empty() && broken_envs_.count(spec.runtime_env_hash) &&
          spec.kind == protocol::TaskKind::kNormal) {
        return true;  // failed below
      }
      unserved.emplace(spec.runtime_env_hash, spec.runtime_env);
      return false;
    });
    if (!next) break;
    const protocol::TaskSpec& spec = tasks_->at(next->first).spec;
    if (auto broken = broken_envs_.find(spec.runtime_env_hash);
        !spec.runtime_env_hash.empty() && broken != broken_envs_.end() && !HasIdle(spec.runtime_env_hash)) {
      queue_.Release(next->second);
      callbacks_.task_done(next->first, std::vector<ObjectValue>(spec.num_returns, SystemError(
                                                                      ObjectKind::kWorkerCrashed, broken->second)),
                           false);
      continue;
    }
    // Most recently used first: its caches (and imported modules) are warm, and workers beyond
    // what the load needs stay idle instead of taking turns.
    Worker* worker = TakeIdle(spec.runtime_env_hash);
    if (worker == nullptr) {  // cannot happen: accept saw one idle
      queue_.Release(next->second);
      queue_.PushFront(next->first, next->second);
      break;
    }
    TaskID first = next->first;
    ResourceSet demand = next->second;
    StartTaskOn(*worker, first, std::move(next->second));
    QueueFollowers(*worker, first, demand);
  }
  TopUpBusyWorkers();
  StealForIdleWorkers();
  // Start more workers if tasks could run but nobody of their environment is idle to run them.
  for (const auto& [env, json] : unserved) {
    if (env.empty()) {
      size_t wanted = queue_.CountRunnable(64);
      while (static_cast<size_t>(starting_) < wanted) {
        if (!StartWorker()) break;
      }
    } else if (starting_envs_.count(env) == 0 && broken_envs_.count(env) == 0) {
      StartWorker(env, json);  // one at a time per environment: the first builds it
    }
  }
  WarnInfeasible();
}

void WorkerDispatcher::WarnInfeasible() {
  for (const auto& [demand, shortfall] : queue_.InfeasibleClasses()) {
    std::string key = demand.ToString();
    if (!warned_infeasible_.insert(key).second) continue;
    std::string text = "a task needs " + demand.ToString() + ", which no node in the cluster has (" + shortfall +
                       "); it stays pending until a node with these resources joins. Other "
                       "tasks are not affected.";
    QLOG(kWarning) << text;
    clients_->WarnDrivers(text);
  }
}

std::vector<uint64_t> WorkerDispatcher::WorkersUsing(const std::string& fragment) const {
  std::vector<uint64_t> out;
  for (const auto& [id, w] : workers_) {
    for (const auto& [name, amount] : w.held.amounts()) {
      if (name.find(fragment) != std::string::npos) {
        out.push_back(id);
        break;
      }
    }
  }
  return out;
}

std::vector<TaskID> WorkerDispatcher::TakeInfeasible() {
  std::vector<TaskID> out;
  for (const auto& [demand, shortfall] : queue_.InfeasibleClasses()) {
    for (const auto& id : queue_.TakeClass(demand)) out.push_back(id);
    warned_infeasible_.erase(demand.ToString());
  }
  return out;
}

void WorkerDispatcher::SendExecute(Worker& worker, const TaskID& id) {
  Task& task = tasks_->at(id);
  LocalClient* client = clients_->Find(worker.client);
  protocol::ExecuteTask msg;
  msg.spec = task.spec;
  msg.gpus = worker.gpus;
  if (!task.spec.function_id.empty() && worker.functions.insert(task.spec.function_id).second) {
    if (const std::string* payload = callbacks_.function_payload(task.spec.function_id)) msg.function_payload = *payload;
  }
  if (task.is_remote()) {
    msg.args = task.remote_args;  // resolved by the owner; stored ones were pulled here
    for (size_t i = 0; i < msg.args.size(); ++i) {
      if (msg.args[i].kind == ObjectKind::kStored) msg.args[i] = objects_->PinCopyFor(worker.client, task.spec.arg_refs[i]);
    }
  } else {
    msg.args.reserve(task.spec.arg_refs.size());
    for (const auto& arg : task.spec.arg_refs) msg.args.push_back(objects_->ValueFor(worker.client, arg, true));
  }
  task.worker = worker.client;
  if (options_.events && task.spec.kind == protocol::TaskKind::kActorMethod) {  // others: when they start
    options_.events->Running(task, static_cast<uint32_t>(worker.pid), worker.client);
  }
  if (client != nullptr) client->conn->Send(MessageType::kExecuteTask, msg);
}

void WorkerDispatcher::MakeCurrent(Worker& worker, const TaskID& id) {
  worker.current_task = id;
  auto it = tasks_->find(id);
  if (it == tasks_->end()) return;
  auto started = it->second.started = std::chrono::steady_clock::now();
  worker.last_job = it->second.spec.job_id;  // its output goes to this job's driver
  worker.last_task_name = it->second.spec.name;
  if (options_.events) {
    options_.events->Running(it->second, static_cast<uint32_t>(worker.pid), worker.client);
  }
  if (uint32_t ms = it->second.spec.timeout_ms; ms != 0) {
    loop_->RunAfter(std::chrono::milliseconds(ms), [this, id, started] {
      auto t = tasks_->find(id);  // still this attempt, still on a worker?
      if (t != tasks_->end() && t->second.worker != 0 && t->second.started == started) {
        callbacks_.task_timed_out(id);
      }
    });
  }
}

void WorkerDispatcher::StartTaskOn(Worker& worker, const TaskID& id, ResourceSet demand) {
  Task& task = tasks_->at(id);
  worker.state = Worker::State::kBusy;
  worker.held = std::move(demand);
  worker.lent_back = false;
  if (int64_t gpu = TaskQueue::GpuDemand(worker.held); gpu > 0) worker.gpus = queue_.AssignGpus(gpu);
  MakeCurrent(worker, id);
  if (task.spec.kind == protocol::TaskKind::kActorCreation) {
    worker.actor_id = task.spec.task_id;
    worker.last_task_name = task.spec.actor.class_name;
    ++actor_workers_;
    callbacks_.actor_placed(task.spec.task_id, worker);
    ReplenishPool();
  }
  SendExecute(worker, id);
}

Status WorkerDispatcher::OnTaskDone(Worker& worker, protocol::TaskDone msg) {
  auto it = tasks_->find(msg.task_id);
  if (worker.current_task && *worker.current_task == msg.task_id) {
    if (it != tasks_->end()) RecordDuration(it->second);
    ReleaseWorker(worker);  // starts its next queued task, if any
  } else {
    // A queued task the worker dropped before starting it (cancelled there).
    auto q = std::find(worker.queued.begin(), worker.queued.end(), msg.task_id);
    if (q == worker.queued.end()) {
      QLOG(kWarning) << "TaskDone for a task the worker is not running: " << msg.task_id.Hex();
      return Status::Ok();
    }
    worker.queued.erase(q);
  }
  if (it == tasks_->end()) return Status::Ok();
  callbacks_.task_done(msg.task_id, std::move(msg.returns), msg.retryable);
  return Status::Ok();
}

void WorkerDispatcher::ReleaseWorker(Worker& worker) {
  LocalClient* client = clients_->Find(worker.client);
  bool open = client != nullptr && !client->conn->closed();
  if (!worker.queued.empty() && worker.state == Worker::State::kBusy && open) {
    // The worker goes straight on to its next queued task, on the same resources (and GPUs).
    if (worker.lent_back) queue_.Acquire(Lendable(worker.held));
    worker.lent_back = false;
    worker.current_task.reset();
    TaskID next = worker.queued.front();
    worker.queued.pop_front();
    MakeCurrent(worker, next);
    return;
  }
  ReleaseHeld(worker);
  worker.lent_back = false;
  worker.current_task.reset();
  worker.held = ResourceSet();
  if (worker.state == Worker::State::kBusy && open) {
    worker.state = Worker::State::kIdle;
    worker.idle_since = std::chrono::steady_clock::now();
    idle_.push_back(worker.client);
  }
}

void WorkerDispatcher::OnBlocked(Worker& worker) {
  if (worker.state != Worker::State::kBusy || worker.lent_back) return;
  worker.lent_back = true;
  queue_.Release(Lendable(worker.held));
  RequestReturn(worker, 0);  // what it waits for may be queued behind it
}

void WorkerDispatcher::OnUnblocked(Worker& worker) {
  if (!worker.lent_back) return;
  worker.lent_back = false;
  queue_.Acquire(Lendable(worker.held));  // may oversubscribe briefly, as the worker must finish
}

ResourceSet WorkerDispatcher::Lendable(const ResourceSet& held) {
  ResourceSet r;
  for (const auto& [name, amount] : held.amounts()) {
    if (!TaskQueue::IsGpuName(name)) r.Set(name, amount);
  }
  return r;
}

ResourceSet WorkerDispatcher::Kept(const ResourceSet& held) {
  ResourceSet r;
  for (const auto& [name, amount] : held.amounts()) {
    if (TaskQueue::IsGpuName(name)) r.Set(name, amount);
  }
  return r;
}

void WorkerDispatcher::ReleaseHeld(Worker& worker) {
  queue_.Release(worker.lent_back ? Kept(worker.held) : worker.held);
  queue_.ReleaseGpus(worker.gpus);
  worker.gpus.clear();
}

void WorkerDispatcher::SwapHeld(Worker& worker, const ResourceSet& now_held) {
  // An actor keeps the devices it was placed with when its lifetime demand has the same GPU
  // amount (the usual case); otherwise they are handed out again.
  int64_t before = TaskQueue::GpuDemand(worker.held);
  queue_.Release(worker.lent_back ? Kept(worker.held) : worker.held);
  worker.held = now_held;
  queue_.Acquire(worker.lent_back ? Kept(worker.held) : worker.held);
  if (int64_t gpu = TaskQueue::GpuDemand(now_held); gpu != before) {
    queue_.ReleaseGpus(worker.gpus);
    worker.gpus.clear();
    if (gpu > 0) worker.gpus = queue_.AssignGpus(gpu);
  }
}

void WorkerDispatcher::CancelSent(Task& task, const protocol::CancelTask& msg) {
  Worker* worker = Find(task.worker);
  if (worker == nullptr) return;
  task.cancelled = true;
  task.retries_left = 0;
  if (!worker->queued.empty()) {
    // The worker may already have moved past the task the node thinks it runs: it decides.
    // A queued task is dropped there; the running one is interrupted (or, with force, its
    // worker exits: the tasks queued behind it go back to the ready queue).
    SendCancel(*worker, msg);
    return;
  }
  if (msg.force) {
    task.force_cancelled = true;
    pool_->Kill(worker->token, SIGKILL);
  } else {
    pool_->Kill(worker->token, SIGINT);  // raises KeyboardInterrupt in the task
  }
}

void WorkerDispatcher::KillWorkerRunning(const Task& task) {
  if (Worker* worker = Find(task.worker)) pool_->Kill(worker->token, SIGKILL);
}

void WorkerDispatcher::Interrupt(const Task& task, std::chrono::milliseconds grace) {
  Worker* worker = Find(task.worker);
  if (worker == nullptr) return;
  if (!worker->queued.empty()) {
    SendCancel(*worker, protocol::CancelTask{task.spec.ReturnId(0), false, false});
  } else {
    pool_->Kill(worker->token, SIGINT);  // KeyboardInterrupt in the task
  }
  // A task that ignores KeyboardInterrupt (or sits in C code) loses its worker after `grace`.
  TaskID id = task.spec.task_id;
  auto started = task.started;
  loop_->RunAfter(grace, [this, id, started] {
    auto t = tasks_->find(id);
    if (t != tasks_->end() && t->second.worker != 0 && t->second.started == started) KillWorkerRunning(t->second);
  });
}

void WorkerDispatcher::SendCancel(Worker& worker, const protocol::CancelTask& msg) {
  if (LocalClient* c = clients_->Find(worker.client)) c->conn->Send(MessageType::kCancelTask, msg);
}

void WorkerDispatcher::RequeueTasks(const std::vector<TaskID>& ids) {
  // Pushed at the head newest first, so they keep their order ahead of later submissions.
  for (auto r = ids.rbegin(); r != ids.rend(); ++r) {
    auto it = tasks_->find(*r);
    if (it == tasks_->end()) continue;
    Task& task = it->second;
    task.worker = 0;
    if (task.cancelled) {
      callbacks_.task_done(*r, std::vector<ObjectValue>(task.spec.num_returns,
                                                        SystemError(ObjectKind::kCancelled,
                                                                    "task " + task.spec.name + " was cancelled")),
                          false);
      continue;
    }
    queue_.PushFront(*r, ResourceSet(task.spec.resources), task.spec.priority);
  }
}

}  // namespace quanta
