#include "net/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/logging.h"

namespace quanta::net {

namespace {
constexpr size_t kReadChunk = 256 * 1024;
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
  if (!closed_) {
    loop_->Remove(fd_);
    ::close(fd_);
  }
}

void Connection::OnEvents(uint32_t events) {
  auto self = shared_from_this();  // handlers may drop the owner's reference
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadAll();
  if (!closed_ && (events & EPOLLOUT)) Flush();
}

void Connection::ReadAll() {
  for (int round = 0; round < 16 && !closed_; ++round) {
    char* space = decoder_.WritableSpace(kReadChunk);
    ssize_t n = ::read(fd_, space, kReadChunk);
    if (n == 0) {
      Close(Status::IOError("peer closed the connection"));
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Close(Status::FromErrno("read"));
      return;
    }
    decoder_.Commit(static_cast<size_t>(n));
    protocol::Frame frame;
    while (!closed_) {
      auto next = decoder_.Next(&frame);
      if (!next.ok()) {
        QLOG(kWarning) << "closing connection fd " << fd_ << ": " << next.status().ToString();
        Close(next.status());
        return;
      }
      if (!next.value()) break;
      on_message_(*this, frame);
    }
    if (static_cast<size_t>(n) < kReadChunk) return;
  }
}

void Connection::AfterAppend() {
  if (out_.size() - out_pos_ >= kEagerFlushBytes) {
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
  } else if (out_pos_ > (1 << 20)) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  UpdateInterest();
}

void Connection::UpdateInterest() {
  bool want = out_pos_ < out_.size();
  if (closed_ || want == want_write_) return;
  want_write_ = want;
  uint32_t events = EPOLLIN | EPOLLRDHUP;
  if (want) events |= EPOLLOUT;
  Status st = loop_->Modify(fd_, events);
  if (!st.ok()) QLOG(kWarning) << "epoll modify failed: " << st.ToString();
}

void Connection::Close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  loop_->Remove(fd_);
  ::close(fd_);
  auto self = shared_from_this();
  if (on_close_) on_close_(*this, why);
}

}  // namespace quanta::net
