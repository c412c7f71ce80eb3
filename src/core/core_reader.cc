// CoreClient: reading the node's connection (who reads: reader_role.h), and what each message
// the node pushes does.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/logging.h"
#include "core/core_client.h"
#include "core/deadline.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

void CoreClient::ReadOnce(std::chrono::microseconds timeout, bool spin) {
  // The node's socket, the wake-up eventfd, then a worker's actor lanes (worker_lanes.h). Lanes
  // are attached and closed only by the reader, which is this thread.
  pollfd fds[2 + WorkerLanes::kMaxLanes] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  const size_t nfds = 2 + lanes_.PollFds(fds + 2);
  if (spin && timeout.count() != 0) {
    std::chrono::microseconds budget = spin_.Next();
    if (budget.count() > 0) {
      if (timeout.count() > 0) budget = std::min(budget, timeout);
      auto start = std::chrono::steady_clock::now();
      timespec zero{0, 0};
      bool caught = false;
      std::chrono::steady_clock::duration spent{};
      while (true) {
        caught = ::ppoll(fds, nfds, &zero, nullptr) != 0;
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
  int n = ::ppoll(fds, nfds, timeout.count() < 0 ? nullptr : &ts, nullptr);
  if (n <= 0) return;  // timeout, or EINTR: the caller re-checks and comes back
  if (fds[1].revents & POLLIN) {
    uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }
    std::lock_guard<std::mutex> lock(write_mu_);
    Status st = WriteInOrder(std::string());  // pending ref deltas
    (void)st;
  }
  if (nfds > 2) {
    lanes_.Read(
        fds + 2, nfds - 2, [this](uint64_t lane, const protocol::Frame& f) { HandleLaneFrame(lane, f); },
        [this](uint64_t lane) { OnLaneClosed(lane); });
    if (notify_pending_) {
      notify_pending_ = false;
      cv_.notify_all();
    }
  }
  if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) return;
  char* space = decoder_.WritableSpace(256 * 1024);
  // recvmsg, not read: the node hands a worker its actor lanes' sockets (SCM_RIGHTS).
  iovec iov{space, 256 * 1024};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t r = ::recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); r > 0 && c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (role_ == protocol::ClientRole::kWorker) {
        std::lock_guard<std::mutex> lock(mu_);
        lanes_.AddReceivedFd(passed);
      } else {
        ::close(passed);
      }
    }
  }
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
      if (msg.spec.kind == protocol::TaskKind::kActorCreation) actor_gpus_ = msg.gpus;  // its calls' too
      QueueTask(std::move(msg));
      break;
    }
    case MessageType::kLaneAttach: {
      protocol::LaneAttach msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      Status st = lanes_.Attach(msg, static_cast<uint32_t>(::getpid()), client_id_);
      if (!st.ok()) QLOG(kWarning) << "lane from node " << msg.caller_node << " not attached: " << st.message();
      break;
    }
    case MessageType::kCancelTask: {
      protocol::CancelTask msg;
      if (protocol::DecodeMessage(frame.body, &msg).ok()) CancelQueued(msg);
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

void CoreClient::QueueTask(protocol::ExecuteTask msg) {
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
}

void CoreClient::CancelQueued(const protocol::CancelTask& msg) {
  // A task queued here that its sender wants dropped: answer it as cancelled if it has not
  // started. A running plain task is interrupted (KeyboardInterrupt in it) or, with force,
  // its worker exits; running actor calls are not interrupted, as in Ray.
  TaskID id = msg.object_id.TaskId();
  protocol::TaskDone done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(tasks_.begin(), tasks_.end(),
                           [&](const protocol::ExecuteTask& t) { return t.spec.task_id == id; });
    if (it == tasks_.end()) {
      if (!running_task_.IsNil() && running_task_ == id) ::kill(getpid(), msg.force ? SIGKILL : SIGINT);
      return;
    }
    done.task_id = id;
    protocol::ObjectValue v;
    v.kind = protocol::ObjectKind::kCancelled;
    v.data = "task " + it->spec.name + " was cancelled before it started";
    done.returns.assign(it->spec.num_returns, v);
    ReleaseTaskArgs(*it);
    tasks_.erase(it);
  }
  Status st = TaskDone(done);  // to whoever sent the task: the node or a lane
  (void)st;
}

void CoreClient::HandleLaneFrame(uint64_t lane, const protocol::Frame& frame) {
  switch (static_cast<MessageType>(frame.type)) {
    case MessageType::kLaneCall: {
      protocol::LaneCall lane_call;
      if (!protocol::DecodeMessage(frame.body, &lane_call).ok()) break;
      protocol::ExecuteTask& msg = lane_call.call;
      // Only calls with inline arguments travel on a lane (the caller's node checks, and so do we).
      bool inline_only = msg.spec.kind == protocol::TaskKind::kActorMethod && msg.function_payload.empty() &&
                         msg.args.size() == msg.spec.arg_refs.size();
      for (const auto& a : msg.args) inline_only = inline_only && a.kind != protocol::ObjectKind::kStored;
      if (!inline_only) {
        QLOG(kWarning) << "a lane sent a call it may not carry: dropped";
        break;
      }
      std::lock_guard<std::mutex> lock(mu_);
      msg.gpus = actor_gpus_;
      // The node needs the call's identity only, should the result go its way: not its arguments.
      std::string blob = std::move(msg.spec.args_blob);
      WorkerLanes::Route route{lane, static_cast<uint32_t>(msg.spec.task_id.Creator() >> 32),
                               std::move(lane_call.ticket), false, msg.spec};
      msg.spec.args_blob = std::move(blob);
      lanes_.Remember(msg.spec.task_id, std::move(route));
      QueueTask(std::move(msg));
      break;
    }
    case MessageType::kCancelTask: {
      protocol::CancelTask msg;
      if (!protocol::DecodeMessage(frame.body, &msg).ok()) break;
      {
        // A lane cancels only the calls it brought.
        std::lock_guard<std::mutex> lock(mu_);
        WorkerLanes::Route* route = lanes_.FindRoute(msg.object_id.TaskId());
        if (route == nullptr || route->lane != lane) break;
      }
      CancelQueued(msg);
      break;
    }
    default:
      QLOG(kWarning) << "unexpected message type " << frame.type << " on a lane";
  }
}

void CoreClient::OnLaneClosed(uint64_t lane) {
  // Its calls not started are dropped: the caller's node settles them with the actor's fate.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    const TaskID id = it->spec.task_id;
    auto route = lanes_.TakeRoute(id);
    if (route && route->lane == lane) {
      ReleaseTaskArgs(*it);
      it = tasks_.erase(it);
      continue;
    }
    if (route) lanes_.Remember(id, std::move(*route));
    ++it;
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
