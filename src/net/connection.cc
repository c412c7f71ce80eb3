#include "net/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <cerrno>

#include "common/logging.h"

namespace quanta::net {

namespace {
constexpr size_t kReadChunk = 256 * 1024;
// The first read of a wake-up asks for little and later ones grow (x4) while they fill the
// space given: an idle or lightly used connection (thousands may be open) keeps a buffer of a
// few KiB instead of kReadChunk, while a peer streaming data still gets kReadChunk reads.
constexpr size_t kFirstRead = 4 * 1024;
// A read buffer larger than this is given back once every frame in it has been handled.
constexpr size_t kKeptReadBuffer = 64 * 1024;
constexpr size_t kEagerFlushBytes = 1 << 20;
}  // namespace

Result<std::shared_ptr<Connection>> Connection::Create(EventLoop* loop, int fd,
                                                       MessageHandler on_message,
                                                       CloseHandler on_close) {
  std::shared_ptr<Connection> conn(
      new Connection(loop, fd, std::move(on_message), std::move(on_close)));
  std::weak_ptr<Connection> weak = conn;
  Status st = loop->Add(fd, EPOLLIN | EPOLLRDHUP, [weak](uint32_t events) {
    if (auto c = weak.lock()) c->OnEvents(events);
  });
  if (!st.ok()) {
    conn->closed_ = true;  // on failure the caller keeps ownership of fd
    return st;
  }
  return conn;
}

Connection::Connection(EventLoop* loop, int fd, MessageHandler on_message, CloseHandler on_close)
    : loop_(loop), fd_(fd), on_message_(std::move(on_message)), on_close_(std::move(on_close)) {}

Connection::~Connection() {
  if (budget_) budget_->Update(accounted_, 0);
  if (!closed_) {
    loop_->Remove(fd_);
    ::close(fd_);
  }
}

void Connection::OnEvents(uint32_t events) {
  auto self = shared_from_this();  // handlers may drop the owner's reference
  if (reading_paused_) {
    // Only writability and errors interest us while paused; input waits in the kernel.
    if (events & EPOLLERR) Close(Status::IOError("connection error"));
    if (!closed_ && (events & EPOLLOUT)) Flush();
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadAll();
  if (!closed_ && (events & EPOLLOUT)) Flush();
}

void Connection::ReadAll() {
  if (!DrainFrames()) return;
  size_t want = kFirstRead;
  for (int round = 0; round < 16 && !closed_ && !reading_paused_; ++round) {
    char* space = decoder_.WritableSpace(want);
    ssize_t n = ::read(fd_, space, want);
    if (n == 0) {
      Close(Status::IOError("peer closed the connection"));
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(Status::FromErrno("read"));
      return;
    }
    decoder_.Commit(static_cast<size_t>(n));
    if (!DrainFrames()) return;
    if (static_cast<size_t>(n) < want) break;
    want = std::min(want * 4, kReadChunk);
  }
  decoder_.ReleaseIfEmpty(kKeptReadBuffer);
}

bool Connection::DrainFrames() {
  protocol::Frame frame;
  while (!closed_ && !closing_ && !reading_paused_) {
    auto next = decoder_.Next(&frame);
    if (!next.ok()) {
      QLOG(kWarning) << "closing connection fd " << fd_ << ": " << next.status().ToString();
      Close(next.status());
      return false;
    }
    if (!next.value()) return true;
    on_message_(*this, frame);
  }
  return !closed_;
}

void Connection::SendEncoded(std::string_view frames) {
  if (closed_ || closing_) return;
  out_.append(frames.data(), frames.size());
  AfterAppend();
}

void Connection::AfterAppend() {
  if (pending_output() > hard_limit_) {
    QLOG(kWarning) << "closing connection fd " << fd_ << ": " << pending_output()
                   << " bytes of output are waiting and the peer does not read them";
    // Closed from the loop, not here: the sender may be iterating over its connections.
    CloseSoon(Status::ResourceExhausted("the peer does not read its messages (" +
                                        std::to_string(pending_output() >> 20) + " MiB waiting)"));
    return;
  }
  Account();
  if (pending_output() >= kEagerFlushBytes) {
    Flush();
  } else if (!flush_scheduled_) {
    flush_scheduled_ = true;
    std::weak_ptr<Connection> weak = shared_from_this();
    // One flush per iteration, after everything this iteration produced has been appended.
    loop_->RunAfter(std::chrono::milliseconds(0), [weak] {
      if (auto c = weak.lock()) {
        c->flush_scheduled_ = false;
        c->Flush();
      }
    });
  }
}

void Connection::Flush() {
  while (!closed_ && out_pos_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(Status::FromErrno("send"));
      return;
    }
    out_pos_ += static_cast<size_t>(n);
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    if (out_.capacity() > (4u << 20)) out_.shrink_to_fit();  // give back a burst's memory
  } else if (out_pos_ > (1 << 20)) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  Account();
  UpdateInterest();
}

Status Connection::SendWithFd(std::string_view frame, int fd) {
  if (closed_ || closing_) return Status::IOError("the connection is closed");
  Flush();
  if (closed_ || out_pos_ < out_.size()) return Status::ResourceExhausted("earlier output is still waiting to be written");
  if (frame.empty()) return Status::InvalidArgument("a descriptor must travel with at least one byte");
  iovec iov{const_cast<char*>(frame.data()), frame.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::FromErrno("sendmsg");
  if (static_cast<size_t>(n) < frame.size()) SendEncoded(frame.substr(static_cast<size_t>(n)));  // the rest, as usual
  return Status::Ok();
}

void Connection::Account() {
  if (!budget_) return;
  size_t now = (closed_ || closing_) ? 0 : pending_output();
  budget_->Update(accounted_, now);
  accounted_ = now;
}

void Connection::UpdateInterest() {
  if (closed_) return;
  bool want = out_pos_ < out_.size();
  // Back-pressure: stop reading from a peer whose replies pile up; resume once half drained.
  // In a group (OutputBudget), also while the group is over its limit and this peer holds more
  // than its fair share: many peers that never read cannot together grow the daemon unbounded.
  size_t mine = pending_output();
  bool pause = reading_paused_
                   ? mine > soft_limit_ / 2 ||
                         (budget_ && budget_->over_half() && mine > OutputBudget::kFairShareBytes / 2)
                   : mine > soft_limit_ || (budget_ && budget_->over() && mine > OutputBudget::kFairShareBytes);
  if (want == want_write_ && pause == reading_paused_) return;
  bool resumed = reading_paused_ && !pause;
  want_write_ = want;
  reading_paused_ = pause;
  uint32_t events = pause ? 0u : static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP);
  if (want) events |= EPOLLOUT;
  Status st = loop_->Modify(fd_, events);
  if (!st.ok()) QLOG(kWarning) << "epoll modify failed: " << st.ToString();
  if (resumed) {
    // Frames may have arrived (and be buffered in the kernel) while paused: read them now.
    std::weak_ptr<Connection> weak = shared_from_this();
    loop_->RunAfter(std::chrono::milliseconds(0), [weak] {
      if (auto c = weak.lock()) {
        if (!c->closed_ && !c->reading_paused_) c->ReadAll();
      }
    });
  }
}

void Connection::CloseSoon(const Status& why) {
  if (closed_ || closing_) return;
  closing_ = true;
  out_.clear();
  out_pos_ = 0;
  Account();
  std::weak_ptr<Connection> weak = shared_from_this();
  loop_->RunAfter(std::chrono::milliseconds(0), [weak, why] {
    if (auto c = weak.lock()) c->Close(why);
  });
}

void Connection::Close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  Account();
  loop_->Remove(fd_);
  ::close(fd_);
  auto self = shared_from_this();
  if (on_close_) on_close_(*this, why);
}

}  // namespace quanta::net
