#include "node/lane_acceptor.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/logging.h"

namespace quanta {

namespace {
constexpr size_t kMaxPendingLanes = 256;
}

LaneAcceptor::~LaneAcceptor() {
  for (auto& [fd, p] : pending_) {
    loop_->Remove(fd);
    ::close(fd);
  }
}

void LaneAcceptor::OnLaneChannel(int fd, const std::string& peer) {
  if (pending_.size() >= kMaxPendingLanes) {
    ++stats_.refused;
    QLOG(kWarning) << "refused a lane from " << peer << ": " << kMaxPendingLanes << " lanes are already opening";
    ::close(fd);
    return;
  }
  uint64_t serial = next_serial_++;
  pending_[fd] = Pending{serial, peer, {}};
  Status st = loop_->Add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](uint32_t) { OnReadable(fd); });
  if (!st.ok()) {
    pending_.erase(fd);
    ::close(fd);
    return;
  }
  loop_->RunAfter(hello_timeout_, [this, fd, serial] {
    auto it = pending_.find(fd);
    if (it != pending_.end() && it->second.serial == serial) Drop(fd, "no LaneHello within the time allowed");
  });
}

void LaneAcceptor::OnReadable(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  // Exactly the hello: whatever follows belongs to the worker that will read the socket.
  char buf[protocol::LaneHello::kSize];
  size_t want = protocol::LaneHello::kSize - p.hello.size();
  ssize_t n = ::recv(fd, buf, want, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    Drop(fd, "closed before its LaneHello");
    return;
  }
  p.hello.append(buf, static_cast<size_t>(n));
  if (p.hello.size() < protocol::LaneHello::kSize) return;
  std::string peer = p.peer;
  auto hello = protocol::LaneHello::Decode(p.hello);
  if (!hello.ok()) {
    Drop(fd, hello.status().message());
    return;
  }
  loop_->Remove(fd);
  pending_.erase(it);
  auto worker = attach_(hello.value(), fd);
  ::close(fd);  // the worker holds its own descriptor now, or the lane is refused
  if (!worker.ok()) {
    ++stats_.refused;
    QLOG(kDebug) << "lane from " << peer << " to actor " << hello->actor_id.Hex()
                 << " refused: " << worker.status().message();
    return;
  }
  ++stats_.attached;
  attached_[worker.value()].insert(hello->caller_node);
}

void LaneAcceptor::Drop(int fd, const std::string& why) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  ++stats_.refused;
  QLOG(kWarning) << "closing a lane from " << it->second.peer << ": " << why;
  loop_->Remove(fd);
  pending_.erase(it);
  ::close(fd);
}

bool LaneAcceptor::Attached(uint64_t worker_client, uint32_t caller_node) const {
  auto it = attached_.find(worker_client);
  return it != attached_.end() && it->second.count(caller_node) > 0;
}

}  // namespace quanta
