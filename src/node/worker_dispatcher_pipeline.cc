// WorkerDispatcher: queueing short tasks at busy workers.
//
// Without it every task costs the node a send to an idle worker and the worker a wait for it
// after each TaskDone; on a loaded machine that wake-up is most of a no-op task's cost. So when
// the node has measured that a function's tasks finish in well under a millisecond and more
// of them are ready than there are idle workers, a worker is sent up to kMaxQueued more of the
// same function right behind the one it starts, and topped up as it works through them. The
// worker runs them in order on the resources of the first (same shape by construction).
//
// What keeps this safe: a worker that blocks in get() gives its queue back (the task it waits
// for may be in it), and a worker that goes idle while others still have queues makes one of
// them give half back. Both use ReturnTasks/TasksReturned; tasks given back keep their turn at
// the head of the ready queue. A worker that dies has its queued tasks requeued without using
// a retry (they never started). Cancelling a queued task removes it at the worker.
#include <algorithm>

#include "common/logging.h"
#include "node/worker_dispatcher.h"

namespace quanta {

using protocol::MessageType;

namespace {
constexpr size_t kMaxQueued = 8;       // tasks waiting at one worker behind the running one
constexpr size_t kTopUpBelow = 3;      // refill a worker's queue when it gets this short
constexpr double kShortTaskUs = 1000;  // "short": mean start-to-done time below this
constexpr int kMinSamples = 3;
}  // namespace

void WorkerDispatcher::RecordDuration(const Task& task) {
  if (task.spec.kind != protocol::TaskKind::kNormal) return;
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - task.started).count();
  FunctionTiming& t = timings_[task.spec.function_id];
  t.mean_us = t.samples == 0 ? us : 0.8 * t.mean_us + 0.2 * us;
  ++t.samples;
}

bool WorkerDispatcher::IsShort(const std::string& function_id) const {
  auto it = timings_.find(function_id);
  return it != timings_.end() && it->second.samples >= kMinSamples && it->second.mean_us < kShortTaskUs;
}

void WorkerDispatcher::QueueFollowers(Worker& worker, const TaskID& first, const ResourceSet& demand) {
  const Task& head = tasks_->at(first);
  if (head.spec.kind != protocol::TaskKind::kNormal || !IsShort(head.spec.function_id)) return;
  if (worker.lent_back || worker.return_requested || worker.queued.size() >= kMaxQueued) return;
  // Leave enough of the backlog for the idle workers (and the others) to share.
  size_t task_workers = 0;
  for (const auto& [cid, w] : workers_) {
    if (!w.is_actor()) ++task_workers;
  }
  size_t backlog = queue_.QueuedInClass(demand);
  size_t share = backlog / std::max<size_t>(1, task_workers);
  size_t room = kMaxQueued - worker.queued.size();
  size_t want = std::min(room, share);
  if (want == 0) return;
  const std::string& fid = head.spec.function_id;
  uint64_t job = head.spec.job_id;
  auto followers = queue_.TakeFollowers(demand, want, [&](const TaskID& id) {
    const Task& t = tasks_->at(id);
    return t.spec.kind == protocol::TaskKind::kNormal && t.spec.function_id == fid && t.spec.job_id == job &&
           t.spec.runtime_env_hash == worker.env_hash && !t.cancelled;
  });
  for (const auto& id : followers) {
    SendExecute(worker, id);
    worker.queued.push_back(id);
  }
}

void WorkerDispatcher::TopUpBusyWorkers() {
  if (queue_.size() == 0) return;
  for (auto& [cid, w] : workers_) {
    if (w.state != Worker::State::kBusy || w.is_actor() || !w.current_task) continue;
    if (w.queued.size() >= kTopUpBelow || w.lent_back || w.return_requested) continue;
    QueueFollowers(w, *w.current_task, w.held);
  }
}

void WorkerDispatcher::StealForIdleWorkers() {
  // Only when nothing else waits and an idle worker could run what comes back right away
  // (otherwise tasks would shuttle between the ready queue and the workers' queues).
  if (idle_.empty() || queue_.size() != 0) return;
  for (auto& [cid, w] : workers_) {
    if (w.queued.empty() || w.return_requested || !queue_.available().Contains(w.held)) continue;
    if (!HasIdle(w.env_hash)) continue;  // what comes back could run only on its environment's workers
    RequestReturn(w, static_cast<uint32_t>((w.queued.size() + 1) / 2));
    return;  // one at a time: what comes back feeds the idle worker
  }
}

void WorkerDispatcher::RequestReturn(Worker& worker, uint32_t count) {
  if (worker.queued.empty() || worker.return_requested) return;
  worker.return_requested = true;
  if (LocalClient* c = clients_->Find(worker.client)) c->conn->Send(MessageType::kReturnTasks, protocol::ReturnTasks{count});
}

void WorkerDispatcher::OnTasksReturned(Worker& worker, const std::vector<ObjectID>& ids) {
  worker.return_requested = false;
  auto given_back = [&](const TaskID& id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); };
  std::vector<TaskID> returned;  // in the order they were queued
  // The node moves a worker on to its next queued task when the previous one is reported
  // done, but the worker may not have started it yet: then it comes back too (with every task
  // queued after it, as the newest go first), and the worker is idle.
  bool current_returned = worker.current_task && given_back(*worker.current_task);
  if (current_returned) returned.push_back(*worker.current_task);
  for (auto q = worker.queued.begin(); q != worker.queued.end();) {
    if (given_back(*q)) {
      returned.push_back(*q);
      q = worker.queued.erase(q);
    } else {
      ++q;  // ids that are not its queued tasks are ignored
    }
  }
  for (const auto& id : returned) {
    // The function may have travelled with a returned task: send it again next time.
    auto t = tasks_->find(id);
    if (t != tasks_->end()) worker.functions.erase(t->second.spec.function_id);
  }
  if (current_returned) {
    if (!worker.queued.empty()) {
      QLOG(kWarning) << "worker gave back its current task but kept " << worker.queued.size() << " queued after it";
      returned.insert(returned.end(), worker.queued.begin(), worker.queued.end());
      worker.queued.clear();
    }
    ReleaseWorker(worker);
  }
  RequeueTasks(returned);
}

}  // namespace quanta
