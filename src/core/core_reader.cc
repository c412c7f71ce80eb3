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

template <typename Reply>
Result<Reply> CoreClient::AwaitReply(std::unique_lock<std::mutex>& lock, uint64_t request_id,
                                     std::unordered_map<uint64_t, Reply>* replies, int64_t timeout_ms,
                                     const char* what) {
  auto deadline = Deadline(timeout_ms);
  while (!replies->count(request_id)) {
    if (closed_) return Status::Cancelled(close_reason_);
    if (AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline) && !replies->count(request_id)) {
      return Status::TimedOut(std::string("the node daemon did not answer ") + what + " in time");
    }
  }
  Reply reply = std::move((*replies)[request_id]);
  replies->erase(request_id);
  return reply;
}

template Result<protocol::CreateObjectReply> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::CreateObjectReply>*, int64_t,
    const char*);
template Result<protocol::StoreStatsReply> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::StoreStatsReply>*, int64_t,
    const char*);
template Result<protocol::ActorNameReply> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::ActorNameReply>*, int64_t,
    const char*);
template Result<protocol::ControlReply> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::ControlReply>*, int64_t,
    const char*);
template Result<protocol::PlacementGroups> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::PlacementGroups>*, int64_t,
    const char*);
template Result<protocol::NodeStats> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::NodeStats>*, int64_t,
    const char*);
template Result<protocol::NodeStateReply> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::NodeStateReply>*, int64_t,
    const char*);
template Result<protocol::ClusterInfo> CoreClient::AwaitReply(
    std::unique_lock<std::mutex>&, uint64_t, std::unordered_map<uint64_t, protocol::ClusterInfo>*, int64_t,
    const char*);

void CoreClient::ReadOnce(std::chrono::microseconds timeout) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
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
    case MessageType::kCreateObjectReply: {
      protocol::CreateObjectReply msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      create_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kStoreStats: {
      protocol::StoreStatsReply msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      stats_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
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
    case MessageType::kClusterInfo: {
      protocol::ClusterInfo msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      cluster_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kControlReply: {
      protocol::ControlReply msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      control_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kPlacementGroups: {
      protocol::PlacementGroups msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      group_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kNodeStats: {
      protocol::NodeStats msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      node_stats_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kNodeState: {
      protocol::NodeStateReply msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      state_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    case MessageType::kActorNameReply: {
      protocol::ActorNameReply msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      name_replies_[msg.request_id] = std::move(msg);
      notify_pending_ = true;
      break;
    }
    default:
      QLOG(kWarning) << "unexpected message type " << frame.type << " from node";
  }
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
