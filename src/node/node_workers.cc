// NodeServer: workers and clients coming and going (idle/blocked workers, output forwarding,
// process exits, disconnects and the retries or failures they cause, cancellation).
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "common/logging.h"
#include "node/node_server.h"

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

void NodeServer::ReleaseWorker(Client& worker) {
  if (!worker.lent_back) queue_.Release(worker.held);
  worker.lent_back = false;
  worker.current_task.reset();
  if (!worker.queued.empty() && worker.state == WorkerState::kBusy && !worker.conn->closed()) {
    // The worker goes straight on to its next queued task, on the same resources.
    TaskID next = worker.queued.front();
    worker.queued.pop_front();
    queue_.Acquire(worker.held);
    MakeCurrent(worker, next);
    return;
  }
  worker.held = ResourceSet();
  if (worker.state == WorkerState::kBusy && !worker.conn->closed()) {
    worker.state = WorkerState::kIdle;
    worker.idle_since = std::chrono::steady_clock::now();
    idle_workers_.push_back(worker.id);
  }
}

void NodeServer::OnWorkerBlocked(Client& worker) {
  if (worker.state != WorkerState::kBusy || worker.lent_back) return;
  worker.lent_back = true;
  queue_.Release(worker.held);
  RequestReturn(worker, 0);  // what it waits for may be queued behind it
}

void NodeServer::OnWorkerUnblocked(Client& worker) {
  if (!worker.lent_back) return;
  worker.lent_back = false;
  queue_.Acquire(worker.held);  // may oversubscribe briefly, as the worker must finish
}

void NodeServer::OnWorkerOutput(uint64_t token, bool is_stderr, std::string text) {
  Client* worker = FindWorkerByToken(token);
  uint64_t job = worker ? worker->last_job : 0;
  Client* driver = job ? FindClient(job) : nullptr;
  if (driver == nullptr || !driver->log_to_driver) return;
  protocol::LogLines msg;
  msg.pid = static_cast<uint32_t>(pool_.PidOf(token));
  if (msg.pid == 0 && worker) msg.pid = worker->pid;
  msg.task_name = worker ? worker->last_task_name : "";
  msg.is_stderr = is_stderr;
  msg.text = std::move(text);
  driver->conn->Send(MessageType::kLogLines, msg);
}

void NodeServer::ExitSurplusIdleWorkers() {
  loop_->RunAfter(kIdleCheckInterval, [this] { ExitSurplusIdleWorkers(); });
  if (shutting_down_ || queue_.size() != 0) return;
  int pool_workers = static_cast<int>(pool_.num_processes()) - actor_workers_;
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> surplus;
  for (uint64_t id : idle_workers_) {  // least recently used first
    if (pool_workers - static_cast<int>(surplus.size()) <= options_.prestart_workers) break;
    Client* w = FindClient(id);
    if (w != nullptr && w->state == WorkerState::kIdle && now - w->idle_since >= kIdleWorkerExitAfter) {
      surplus.push_back(id);
    }
  }
  for (uint64_t id : surplus) {
    Client* w = FindClient(id);
    if (w != nullptr) w->conn->Close(Status::Cancelled("idle worker beyond the pool size exits"));
  }
}

bool NodeServer::StartWorker() {
  if (failed_starts_ >= kMaxFailedStarts || shutting_down_) return false;
  if (!pool_.Start().ok()) return false;
  ++starting_workers_;
  return true;
}

void NodeServer::OnWorkerExit(uint64_t token, int wait_status) {
  Client* worker = FindWorkerByToken(token);
  if (worker == nullptr && closed_worker_tokens_.erase(token) > 0) return;  // registered, then closed
  if (worker == nullptr) {
    // Died before it said Hello.
    if (starting_workers_ > 0) --starting_workers_;
    QLOG(kWarning) << "worker token=" << token << " exited before registering (status "
                   << wait_status << "); see its log in " << options_.session_dir << "/logs";
    if (++failed_starts_ == kMaxFailedStarts) {
      std::string err = TailOfFile(options_.session_dir + "/logs/worker-" + std::to_string(token) + ".err");
      std::string text = "worker processes exit before they can start (" + std::to_string(kMaxFailedStarts) +
                         " in a row); no more will be started and tasks stay pending. The last one "
                         "printed:\n" + err + "\n(logs: " + options_.session_dir + "/logs)";
      QLOG(kError) << text;
      for (auto& [cid, c] : clients_) {
        if (c.role == protocol::ClientRole::kDriver) c.conn->Send(MessageType::kWarning, protocol::Warning{text});
      }
    }
    return;
  }
  if (!worker->conn->closed()) worker->conn->Close(Status::IOError("worker process exited"));
}

void NodeServer::OnClientClosed(uint64_t client_id, const Status& why) {
  auto it = clients_.find(client_id);
  if (it == clients_.end()) return;
  Client client = std::move(it->second);
  clients_.erase(it);
  if (client.role == protocol::ClientRole::kWorker && client.worker_token) {
    token_to_client_.erase(client.worker_token);
    // Its exit (if not seen yet) is expected, not a failed start.
    if (pool_.PidOf(client.worker_token) != 0) closed_worker_tokens_.insert(client.worker_token);
    idle_workers_.erase(std::remove(idle_workers_.begin(), idle_workers_.end(), client_id),
                        idle_workers_.end());
    pool_.Kill(client.worker_token, SIGKILL);
    if (!client.lent_back) queue_.Release(client.held);
    // Queued tasks never started: back to the ready queue, no retry used.
    RequeueTasks(std::vector<TaskID>(client.queued.begin(), client.queued.end()));
    if (!client.actor_id.IsNil()) {
      --actor_workers_;
      OnActorWorkerLost(client, why);
    } else if (client.current_task) {
      auto t = tasks_.find(*client.current_task);
      if (t != tasks_.end()) {
        Task& task = t->second;
        if (task.force_cancelled || task.cancelled) {
          FailTask(t->first, SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled"));
        } else if (task.retries_left != 0) {
          if (task.retries_left > 0) --task.retries_left;
          QLOG(kInfo) << "retrying task " << task.spec.name << " after its worker died";
          MakeReady(t->first);
        } else {
          FailTask(t->first, SystemError(ObjectKind::kWorkerCrashed,
                                         "the worker process (pid " + std::to_string(client.pid) +
                                             ") running task " + task.spec.name +
                                             " died unexpectedly: " + why.message()));
        }
      }
    }
    ReplenishPool();
  }
  if (store_) {
    store_->UnpinAll(client_id);
    store_->AbortCreatesOf(client_id);  // half-written objects vanish with their writer
  }
  std::vector<ObjectID> freed;
  for (const auto& [id, n] : client.holdings) objects_.RemoveRef(id, n, &freed);
  HandleFreed(freed);
  QLOG(kInfo) << "client pid=" << client.pid << " disconnected: " << why.message();
}

void NodeServer::OnCancelTask(const protocol::CancelTask& msg) {
  TaskID id = msg.object_id.TaskId();
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;  // finished already: nothing to cancel
  Task& task = it->second;
  ObjectValue cancelled = SystemError(ObjectKind::kCancelled, "task " + task.spec.name + " was cancelled");
  if (task.spec.kind == protocol::TaskKind::kActorCreation) return;  // use quanta.kill for actors
  if (task.spec.kind == protocol::TaskKind::kActorMethod) {
    // A call not started yet is dropped; one the actor already runs is not interrupted (that
    // could corrupt the actor's state), as in Ray.
    Actor* actor = actors_.Find(task.spec.actor_id);
    if (actor == nullptr) return;
    if (actor->in_flight.count(id)) {
      // Already sent: the actor's worker drops it if it has not started it yet.
      if (Client* worker = FindClient(actor->worker)) worker->conn->Send(MessageType::kCancelTask, msg);
      return;
    }
    auto q = std::find(actor->queue.begin(), actor->queue.end(), id);
    if (q == actor->queue.end()) return;
    actor->queue.erase(q);
    deps_.Forget(id);
    FailTask(id, cancelled);
    PumpActor(*actor);
    return;
  }
  if (deps_.Forget(id) || queue_.Remove(id)) {
    FailTask(id, cancelled);
    return;
  }
  Client* worker = FindClient(task.worker);
  if (worker == nullptr) return;
  task.cancelled = true;
  task.retries_left = 0;
  if (!worker->queued.empty()) {
    // The worker may already have moved past the task the node thinks it runs: it decides.
    // A queued task is dropped there; the running one is interrupted (or, with force, its
    // worker exits: the tasks queued behind it go back to the ready queue).
    worker->conn->Send(MessageType::kCancelTask, msg);
    return;
  }
  if (msg.force) {
    task.force_cancelled = true;
    pool_.Kill(worker->worker_token, SIGKILL);
  } else {
    pool_.Kill(worker->worker_token, SIGINT);  // raises KeyboardInterrupt in the task
  }
}

}  // namespace quanta
