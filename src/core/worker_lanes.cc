#include "core/worker_lanes.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/logging.h"

namespace quanta {

WorkerLanes::~WorkerLanes() {
  for (int fd : received_fds_) ::close(fd);
  for (auto& l : lanes_) ::close(l->fd);
}

void WorkerLanes::AddReceivedFd(int fd) {
  if (received_fds_.size() >= kMaxFds) {
    ::close(fd);
    return;
  }
  received_fds_.push_back(fd);
}

Status WorkerLanes::Attach(const protocol::LaneAttach& msg, uint32_t pid, uint64_t worker_id) {
  if (received_fds_.empty()) return Status::ProtocolError("LaneAttach without its socket");
  int fd = received_fds_.front();
  received_fds_.pop_front();
  if (lanes_.size() >= kMaxLanes) {
    ::close(fd);
    return Status::ResourceExhausted("too many lanes to this worker");
  }
  auto lane = std::make_unique<Lane>();
  lane->id = next_lane_++;
  lane->fd = fd;
  lane->caller_node = msg.caller_node;
  lane->decoder.set_max_body(kMaxLaneFrame);
  uint64_t id = lane->id;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    lanes_.push_back(std::move(lane));
  }
  return Write(id, protocol::MessageType::kLaneReady, protocol::LaneReady{msg.actor_id, pid, worker_id});
}

size_t WorkerLanes::PollFds(pollfd* fds) const {
  size_t n = 0;
  for (const auto& l : lanes_) fds[n++] = pollfd{l->fd, POLLIN, 0};
  return n;
}

void WorkerLanes::Read(const pollfd* fds, size_t n, const std::function<void(uint64_t, const protocol::Frame&)>& on_frame,
                       const std::function<void(uint64_t)>& on_closed) {
  std::vector<uint64_t> closed;
  for (size_t i = 0; i < n && i < lanes_.size(); ++i) {
    Lane& l = *lanes_[i];
    bool broken;
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      broken = l.broken;
    }
    if (broken) {
      closed.push_back(l.id);
      continue;
    }
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char* space = l.decoder.WritableSpace(256 * 1024);
    ssize_t r = ::recv(l.fd, space, 256 * 1024, MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) {
      closed.push_back(l.id);
      continue;
    }
    l.decoder.Commit(static_cast<size_t>(r));
    protocol::Frame frame;
    while (true) {
      auto next = l.decoder.Next(&frame);
      if (!next.ok()) {
        QLOG(kWarning) << "closing a lane from node " << l.caller_node << ": " << next.status().message();
        closed.push_back(l.id);
        break;
      }
      if (!next.value()) break;
      on_frame(l.id, frame);
    }
  }
  for (uint64_t id : closed) {
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      auto it = std::find_if(lanes_.begin(), lanes_.end(), [&](const auto& l) { return l->id == id; });
      if (it == lanes_.end()) continue;
      if ((*it)->flushing) {  // another thread writes on it now: closed at a later read
        (*it)->broken = true;
        ::shutdown((*it)->fd, SHUT_RDWR);
        continue;
      }
      ::close((*it)->fd);
      lanes_.erase(it);
    }
    on_closed(id);
  }
}

std::optional<WorkerLanes::Route> WorkerLanes::TakeRoute(const TaskID& task) {
  auto it = routes_.find(task);
  if (it == routes_.end()) return std::nullopt;
  Route r = std::move(it->second);
  routes_.erase(it);
  return r;
}

Status WorkerLanes::WriteFrame(uint64_t lane, const std::string& frame) {
  std::unique_lock<std::mutex> lock(write_mu_);
  auto it = std::find_if(lanes_.begin(), lanes_.end(), [&](const auto& l) { return l->id == lane; });
  if (it == lanes_.end() || (*it)->broken) return Status::IOError("the lane is closed");
  Lane& l = **it;  // not erased while `flushing` (Read waits for the flush to end)
  l.out += frame;
  if (l.flushing) return Status::Ok();  // the flushing thread takes it along
  l.flushing = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!l.out.empty() && !l.broken) {
    std::string chunk;
    chunk.swap(l.out);
    lock.unlock();
    size_t sent = 0;
    bool failed = false;
    while (sent < chunk.size()) {
      ssize_t n = ::send(l.fd, chunk.data() + sent, chunk.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && std::chrono::steady_clock::now() < deadline) {
        pollfd p{l.fd, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      failed = true;
      break;
    }
    lock.lock();
    if (failed) {
      l.broken = true;  // a half-written frame: the lane cannot be used again
      l.out.clear();
      ::shutdown(l.fd, SHUT_RDWR);
    }
  }
  l.flushing = false;
  if (l.broken) return Status::IOError("the lane to node " + std::to_string(l.caller_node) + " does not take writes");
  return Status::Ok();
}

}  // namespace quanta
