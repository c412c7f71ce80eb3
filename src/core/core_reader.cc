// CoreClient: reading the node's connection (who reads: reader_role.h), and what each message
// the node pushes does.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/logging.h"
#include "core/core_client.h"
#include "core/deadline.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

void CoreClient::ReadOnce(std::chrono::microseconds timeout, bool spin) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  if (spin && timeout.count() != 0) {
    std::chrono::microseconds budget = spin_.Next();
    if (budget.count() > 0) {
      if (timeout.count() > 0) budget = std::min(budget, timeout);
      auto start = std::chrono::steady_clock::now();
      timespec zero{0, 0};
      bool caught = false;
      std::chrono::steady_clock::duration spent{};
      while (true) {
        caught = ::ppoll(fds, 2, &zero, nullptr) != 0;
        spent = std::chrono::steady_clock::now() - start;
        if (caught || spent >= budget) break;
      }
      auto spent_us = std::chrono::duration_cast<std::chrono::microseconds>(spent);
      spin_.Report(caught, spent_us);
      spins_.fetch_add(1, std::memory_order_relaxed);
      if (caught) spins_caught_.fetch_add(1, std::memory_order_relaxed);
      if (timeout.count() > 0) timeout = std::max(std::chrono::microseconds(0), timeout - spent_us);
    }
  }
  timespec ts{static_cast<time_t>(timeout.count() / 1000000), static_cast<long>(timeout.count() % 1000000) * 1000};
  int n = ::ppoll(fds, 2, timeout.count() < 0 ? nullptr : &ts, nullptr);
  if (n <= 0) return;  // timeout, or EINTR: the caller re-checks and comes back
  if (fds[1].revents & POLLIN) {
    uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
    std::lock_guard<std::mutex> lock(write_mu_);
    Status st = WriteInOrder(std::string());  // pending ref deltas
    (void)st;
  }
  if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) return;
  char* space = decoder_.WritableSpace(256 * 1024);
  ssize_t r = ::read(fd_, space, 256 * 1024);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    OnConnectionLost();
    return;
  }
  decoder_.Commit(static_cast<size_t>(r));
  HandleBufferedFrames();
}

void CoreClient::HandleBufferedFrames() {
  protocol::Frame frame;
  while (true) {
    auto next = decoder_.Next(&frame);
    if (!next.ok()) {
      QLOG(kError) << "bad frame from node: " << next.status().ToString();
      OnConnectionLost();
      return;
    }
    if (!next.value()) break;
    HandleFrame(frame);
  }
  // One wake-up per read, not per frame: a burst of results wakes each waiter once.
  if (notify_pending_) {
    notify_pending_ = false;
    cv_.notify_all();
  }
}

void CoreClient::OnConnectionLost() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (close_reason_.empty()) {
      close_reason_ = "lost the connection to the Quanta node daemon (it exited or was killed); "
                      "see the logs in " + session_dir_ + "/logs";
    }
    closed_ = true;
  }
  ::shutdown(fd_, SHUT_RDWR);
  cv_.notify_all();
  reader_role_.WakeBackground();
}

void CoreClient::BackgroundReader() {
  std::unique_lock<std::mutex> lock(mu_);
  reader_role_.RunBackground(lock);
}

void CoreClient::HandleFrame(const protocol::Frame& frame) {
  switch (static_cast<MessageType>(frame.type)) {
    case MessageType::kObjectReady: {
      protocol::ObjectReady msg;
      if (protocol::DecodeMessage(frame.body, &msg).ok()) OnObjectReady(std::move(msg));
      break;
    }
    case MessageType::kGeneratorAck: {
      protocol::GeneratorAck msg;
      if (protocol::DecodeMessage(frame.body, &msg).ok()) OnGeneratorAck(msg);
      break;
    }
    case MessageType::kCreateObjectReply:
      OnReply<protocol::CreateObjectReply>(frame);
      break;
    case MessageType::kStoreStats:
      OnReply<protocol::StoreStatsReply>(frame);
      break;
    case MessageType::kExecuteTask: {
      protocol::ExecuteTask msg;
      Status st = protocol::DecodeMessage(frame.body, &msg);
      if (!st.ok()) {
        QLOG(kError) << "bad ExecuteTask: " << st.ToString();
        break;
      }
      std::lock_guard<std::mutex> lock(mu_);
      // Arguments in shared memory arrive pinned for us; the task holds one use of each until
      // the Python layer releases it (ReleaseUse) once nothing reads the bytes any more.
      for (size_t i = 0; i < msg.args.size() && i < msg.spec.arg_refs.size(); ++i) {
        if (msg.args[i].kind != protocol::ObjectKind::kStored) continue;
        auto loc = protocol::StoredLocation::Decode(msg.args[i].data);
        if (!loc.ok() || !loc->pinned) continue;
        Local& l = objects_[msg.spec.arg_refs[i]];
        l.node_pins += 1;
        l.uses += 1;
        l.offset = loc->offset;
        l.size = loc->size;
      }
      tasks_.push_back(std::move(msg));
      notify_pending_ = true;
      break;
    }
    case MessageType::kCancelTask: {
      // A task queued here that the node wants dropped: answer it as cancelled if it has not
      // started. A running plain task is interrupted (KeyboardInterrupt in it) or, with force,
      // its worker exits; running actor calls are not interrupted, as in Ray.
      protocol::CancelTask msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      TaskID id = msg.object_id.TaskId();
      protocol::TaskDone done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = std::find_if(tasks_.begin(), tasks_.end(),
                               [&](const protocol::ExecuteTask& t) { return t.spec.task_id == id; });
        if (it == tasks_.end()) {
          if (!running_task_.IsNil() && running_task_ == id) ::kill(getpid(), msg.force ? SIGKILL : SIGINT);
          break;
        }
        done.task_id = id;
        protocol::ObjectValue v;
        v.kind = protocol::ObjectKind::kCancelled;
        v.data = "task " + it->spec.name + " was cancelled before it started";
        done.returns.assign(it->spec.num_returns, v);
        ReleaseTaskArgs(*it);
        tasks_.erase(it);
      }
      Status st = Send(MessageType::kTaskDone, done);
      (void)st;
      break;
    }
    case MessageType::kReturnTasks: {
      // Plain tasks queued here and not started go back to the node, newest first.
      protocol::ReturnTasks msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      protocol::IdList returned;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto it = tasks_.end(); it != tasks_.begin();) {
          --it;
          if (msg.count != 0 && returned.ids.size() >= msg.count) break;
          if (it->spec.kind != protocol::TaskKind::kNormal) continue;
          returned.ids.push_back(it->spec.task_id);
          ReleaseTaskArgs(*it);
          it = tasks_.erase(it);
        }
      }
      Status st = Send(MessageType::kTasksReturned, returned);
      (void)st;
      break;
    }
    case MessageType::kLogLines: {
      protocol::LogLines msg;
      if (protocol::DecodeMessage(frame.body, &msg).ok()) PrintLogLines(msg);
      break;
    }
    case MessageType::kWarning: {
      protocol::Warning msg;
      if (protocol::DecodeMessage(frame.body, &msg).ok()) {
        std::string line = "(quanta) warning: " + msg.text + "\n";
        ssize_t ignored = ::write(2, line.data(), line.size());
        (void)ignored;
      }
      break;
    }
    case MessageType::kClusterInfo:
      OnReply<protocol::ClusterInfo>(frame);
      break;
    case MessageType::kControlReply:
      OnReply<protocol::ControlReply>(frame);
      break;
    case MessageType::kPlacementGroups:
      OnReply<protocol::PlacementGroups>(frame);
      break;
    case MessageType::kNodeStats:
      OnReply<protocol::NodeStats>(frame);
      break;
    case MessageType::kNodeState:
      OnReply<protocol::NodeStateReply>(frame);
      break;
    case MessageType::kActorNameReply:
      OnReply<protocol::ActorNameReply>(frame);
      break;
    default:
      QLOG(kWarning) << "unexpected message type " << frame.type << " from node";
  }
}

template <typename R>
void CoreClient::OnReply(const protocol::Frame& frame) {
  R msg;
  if (!protocol::DecodeMessage(frame.body, &msg).ok()) return;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = msg.request_id;
  if (replies_.Deliver(id, std::move(msg))) notify_pending_ = true;
}

void CoreClient::ReleaseTaskArgs(const protocol::ExecuteTask& task) {
  for (size_t i = 0; i < task.args.size() && i < task.spec.arg_refs.size(); ++i) {
    if (task.args[i].kind != protocol::ObjectKind::kStored) continue;
    auto loc = protocol::StoredLocation::Decode(task.args[i].data);
    if (!loc.ok() || !loc->pinned) continue;
    auto it = objects_.find(task.spec.arg_refs[i]);
    if (it == objects_.end()) continue;
    --it->second.uses;
    MaybeUnpin(task.spec.arg_refs[i], it->second);
  }
}

void CoreClient::PrintLogLines(const protocol::LogLines& msg) {
  std::string prefix = "(" + (msg.task_name.empty() ? std::string("worker") : msg.task_name) +
                       " pid=" + std::to_string(msg.pid) + (msg.origin.empty() ? "" : ", ip=" + msg.origin) + ") ";
  std::string out;
  size_t start = 0;
  while (start < msg.text.size()) {
    size_t end = msg.text.find('\n', start);
    if (end == std::string::npos) end = msg.text.size();
    out += prefix;
    out.append(msg.text, start, end - start);
    out += '\n';
    start = end + 1;
  }
  ssize_t ignored = ::write(msg.is_stderr ? 2 : 1, out.data(), out.size());
  (void)ignored;
}


}  // namespace quanta
