// A framed, non-blocking connection driven by an EventLoop (used by the daemons).
//
// Incoming bytes are split into frames and handed to the message handler one by one.
// Outgoing messages are appended to a buffer and written when the loop flushes (once per
// iteration, see EventLoop::AtEndOfIteration) or when the buffer grows large, so bursts are
// batched. A malformed frame or a read/write error closes the connection and calls the close
// handler once.
//
// Output is bounded: while more than the soft limit is waiting to be written, the connection
// stops reading from the peer (a peer that does not read its replies gets no more service);
// beyond the hard limit it is closed, with the reason logged. Incoming frames are bounded by
// SetMaxFrameBody (small until the peer has identified itself). Connections may also share an
// OutputBudget, which bounds their total queued output.
//
// Ownership: created and owned (via shared_ptr) by the server that accepted or opened it; it
// owns its fd. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "net/event_loop.h"
#include "net/output_budget.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace quanta::net {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using MessageHandler = std::function<void(Connection&, const protocol::Frame&)>;
  using CloseHandler = std::function<void(Connection&, const Status& why)>;

  // Takes ownership of `fd` on success; on failure the caller still owns (and closes) it.
  static Result<std::shared_ptr<Connection>> Create(EventLoop* loop, int fd,
                                                    MessageHandler on_message,
                                                    CloseHandler on_close);
  ~Connection();

  template <typename M>
  void Send(protocol::MessageType type, const M& msg) {
    if (closed_ || closing_) return;
    protocol::AppendMessage(&out_, type, msg);
    AfterAppend();
  }
  void Flush();
  void Close(const Status& why);
  // Closes from the next loop iteration (safe while the caller iterates over connections);
  // nothing more is sent meanwhile.
  void CloseSoon(const Status& why);
  bool closed() const { return closed_ || closing_; }
  int fd() const { return fd_; }

  // Bytes queued for the peer and not yet written.
  size_t pending_output() const { return out_.size() - out_pos_; }
  void SetMaxFrameBody(uint32_t max_body) { decoder_.set_max_body(max_body); }
  void SetOutputLimits(size_t soft, size_t hard) {
    soft_limit_ = soft;
    hard_limit_ = hard;
  }
  // Joins a group whose total pending output is bounded (see OutputBudget; shared, so it lives
  // as long as any member). Call before anything is sent.
  void SetOutputBudget(std::shared_ptr<OutputBudget> budget) { budget_ = std::move(budget); }
  // Frames may be appended already encoded (e.g. forwarded as they arrived).
  void SendEncoded(std::string_view frames);
  // Unix sockets: sends `frame` now with `fd` attached (SCM_RIGHTS) after what is queued has
  // been written; the descriptor arrives with the frame's first byte. Fails, sending nothing,
  // if earlier output cannot be written at once. The caller keeps (and closes) `fd`.
  Status SendWithFd(std::string_view frame, int fd);

  // Free-form owner data (e.g. the server's id for this peer).
  uint64_t tag = 0;

 private:
  Connection(EventLoop* loop, int fd, MessageHandler on_message, CloseHandler on_close);
  void OnEvents(uint32_t events);
  void ReadAll();
  // Hands every complete buffered frame to the handler; false if the connection closed.
  bool DrainFrames();
  void AfterAppend();
  void UpdateInterest();
  // Reports the current pending output to the group's budget, if any.
  void Account();

  EventLoop* loop_;
  int fd_;
  MessageHandler on_message_;
  CloseHandler on_close_;
  protocol::FrameDecoder decoder_;
  std::string out_;
  size_t out_pos_ = 0;
  bool want_write_ = false;
  bool closed_ = false;
  bool closing_ = false;  // CloseSoon was called
  bool flush_scheduled_ = false;
  bool reading_paused_ = false;  // output over the soft limit: the peer must read first
  size_t soft_limit_ = 64u << 20;
  size_t hard_limit_ = 1536u << 20;
  std::shared_ptr<OutputBudget> budget_;
  size_t accounted_ = 0;  // pending output last reported to budget_
};

}  // namespace quanta::net
