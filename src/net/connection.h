// A framed, non-blocking connection driven by an EventLoop (used by the daemons).
//
// Incoming bytes are split into frames and handed to the message handler one by one.
// Outgoing messages are appended to a buffer and written when the loop flushes (once per
// iteration, see EventLoop::AtEndOfIteration) or when the buffer grows large, so bursts are
// batched. A malformed frame or a read/write error closes the connection and calls the close
// handler once.
//
// Ownership: created and owned (via shared_ptr) by the server that accepted or opened it; it
// owns its fd. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "net/event_loop.h"
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
    if (closed_) return;
    protocol::AppendMessage(&out_, type, msg);
    AfterAppend();
  }
  void Flush();
  void Close(const Status& why);
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

  // Free-form owner data (e.g. the server's id for this peer).
  uint64_t tag = 0;

 private:
  Connection(EventLoop* loop, int fd, MessageHandler on_message, CloseHandler on_close);
  void OnEvents(uint32_t events);
  void ReadAll();
  void AfterAppend();
  void UpdateInterest();

  EventLoop* loop_;
  int fd_;
  MessageHandler on_message_;
  CloseHandler on_close_;
  protocol::FrameDecoder decoder_;
  std::string out_;
  size_t out_pos_ = 0;
  bool want_write_ = false;
  bool closed_ = false;
  bool flush_scheduled_ = false;
};

}  // namespace quanta::net
