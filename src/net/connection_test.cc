// Unit tests for net/connection.h over a real EventLoop and a socketpair: ordered delivery in
// both directions, output batching and back-pressure, malformed input, and peer close.
#include "net/connection.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "protocol/messages.h"

namespace quanta::net {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;

std::string WarningFrame(const std::string& text) {
  std::string out;
  protocol::AppendMessage(&out, MessageType::kWarning, protocol::Warning{text});
  return out;
}

std::string RawHeader(uint32_t body_size, uint16_t version, uint16_t type) {
  std::string out(protocol::kFrameHeaderSize, '\0');
  std::memcpy(out.data(), &body_size, 4);
  std::memcpy(out.data() + 4, &version, 2);
  std::memcpy(out.data() + 6, &type, 2);
  return out;
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0)
        << strerror(errno);
    a_fd_ = fds[0];
    b_fd_ = fds[1];
    loop_.AtEndOfIteration([this] {
      if (done_ && done_()) loop_.Stop();
    });
  }

  void TearDown() override {
    a_.reset();
    b_.reset();
    // fds not adopted by a Connection are ours to close.
    if (close_a_fd_ && a_fd_ >= 0) ::close(a_fd_);
    if (close_b_fd_ && b_fd_ >= 0) ::close(b_fd_);
  }

  // Runs the loop until `done` holds (checked after every iteration) or `timeout` passes.
  // The loop cannot be restarted after Stop(), so each test calls this once.
  bool RunUntil(std::function<bool()> done, std::chrono::milliseconds timeout = 20s) {
    if (done()) return true;
    done_ = std::move(done);
    bool timed_out = false;
    loop_.RunAfter(timeout, [&] {
      timed_out = true;
      loop_.Stop();
    });
    loop_.Run();
    return !timed_out;
  }

  std::shared_ptr<Connection> Make(int fd, Connection::MessageHandler on_message,
                                   Connection::CloseHandler on_close) {
    auto c = Connection::Create(&loop_, fd, std::move(on_message), std::move(on_close));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : nullptr;
  }

  void WriteRaw(int fd, const std::string& data) {
    ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()))
        << strerror(errno);
  }

  // True once the peer of `fd` is gone: EOF, or ECONNRESET if it closed with unread input.
  static bool PeerGone(int fd) {
    char buf[4096];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n == 0) return true;
      return errno == ECONNRESET;
    }
  }

  EventLoop loop_;  // declared first: destroyed after the connections
  int a_fd_ = -1, b_fd_ = -1;
  bool close_a_fd_ = false, close_b_fd_ = false;
  std::shared_ptr<Connection> a_, b_;
  std::function<bool()> done_;
};

TEST_F(ConnectionTest, MessagesArriveInOrder) {
  std::vector<std::string> got;
  int closes = 0;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {},
            [&](Connection&, const Status&) { ++closes; });
  b_ = Make(b_fd_,
            [&](Connection&, const protocol::Frame& f) {
              EXPECT_EQ(f.type, static_cast<uint16_t>(MessageType::kWarning));
              protocol::Warning w;
              Status st = protocol::DecodeMessage(f.body, &w);
              EXPECT_TRUE(st.ok()) << st.ToString();
              got.push_back(std::move(w.text));
            },
            [&](Connection&, const Status&) { ++closes; });
  ASSERT_TRUE(a_ && b_);

  // Far more than a socket buffer holds, so writes come back short and the rest waits for
  // EPOLLOUT; one message alone exceeds the eager-flush threshold.
  std::vector<std::string> sent;
  for (int i = 0; i < 3000; ++i) {
    std::string text = "message " + std::to_string(i);
    if (i % 500 == 7) text += std::string(200 * 1024, static_cast<char>('a' + i % 26));
    if (i == 1234) text += std::string(3 << 20, 'z');
    sent.push_back(text);
    a_->Send(MessageType::kWarning, protocol::Warning{text});
  }
  ASSERT_TRUE(RunUntil([&] { return got.size() >= sent.size(); })) << "got " << got.size();
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    ASSERT_EQ(got[i], sent[i]) << "message " << i << " out of order or corrupted";
  }
  EXPECT_EQ(closes, 0);
  EXPECT_FALSE(a_->closed());
  EXPECT_FALSE(b_->closed());
}

TEST_F(ConnectionTest, RepliesSentFromHandlersArriveInOrder) {
  // Ping-pong: each side answers from inside its message handler.
  constexpr uint64_t kRounds = 500;
  std::vector<uint64_t> a_got, b_got;
  a_ = Make(a_fd_,
            [&](Connection& c, const protocol::Frame& f) {
              protocol::RequestId m;
              ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
              a_got.push_back(m.request_id);
              if (m.request_id + 1 < kRounds) {
                c.Send(MessageType::kGetClusterInfo, protocol::RequestId{m.request_id + 1});
              }
            },
            nullptr);
  b_ = Make(b_fd_,
            [&](Connection& c, const protocol::Frame& f) {
              protocol::RequestId m;
              ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
              b_got.push_back(m.request_id);
              c.Send(MessageType::kGetClusterInfo, m);  // echo
            },
            nullptr);
  ASSERT_TRUE(a_ && b_);
  a_->Send(MessageType::kGetClusterInfo, protocol::RequestId{0});
  ASSERT_TRUE(RunUntil([&] { return a_got.size() >= kRounds; }));
  ASSERT_EQ(a_got.size(), kRounds);
  ASSERT_EQ(b_got.size(), kRounds);
  for (uint64_t i = 0; i < kRounds; ++i) {
    EXPECT_EQ(a_got[i], i);
    EXPECT_EQ(b_got[i], i);
  }
}

TEST_F(ConnectionTest, ExplicitFlushSendsImmediately) {
  std::vector<std::string> got;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {}, nullptr);
  ASSERT_TRUE(a_);
  close_b_fd_ = true;
  a_->Send(MessageType::kWarning, protocol::Warning{"now"});
  a_->Flush();
  std::string expected = WarningFrame("now");
  std::string buf(expected.size(), '\0');
  ASSERT_EQ(::recv(b_fd_, buf.data(), buf.size(), MSG_DONTWAIT), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(buf, expected);
}

struct BadStream {
  const char* name;
  std::string bytes;
};

class MalformedTest : public ConnectionTest, public ::testing::WithParamInterface<int> {};

std::vector<BadStream> BadStreams() {
  std::string garbage;
  for (int i = 0; i < 64; ++i) garbage.push_back(static_cast<char>(i * 73 + 11));
  return {
      {"wrong version", WarningFrame("ok") + RawHeader(2, protocol::kProtocolVersion + 1, 36) + "xx" + WarningFrame("after")},
      {"zero version", WarningFrame("ok") + RawHeader(0, 0, 36)},
      {"oversize length", WarningFrame("ok") + RawHeader(0xFFFFFFFFu, protocol::kProtocolVersion, 36)},
      {"length just over the limit", WarningFrame("ok") + RawHeader(protocol::kMaxFrameBody + 1, protocol::kProtocolVersion, 3)},
      {"random garbage", WarningFrame("ok") + garbage},
  };
}

TEST_P(MalformedTest, MalformedFrameClosesOnceAndStopsDelivering) {
  BadStream bad = BadStreams()[GetParam()];
  SCOPED_TRACE(bad.name);
  std::vector<std::string> got;
  int closes = 0;
  Status why;
  a_ = Make(a_fd_,
            [&](Connection&, const protocol::Frame& f) {
              protocol::Warning w;
              EXPECT_TRUE(protocol::DecodeMessage(f.body, &w).ok());
              got.push_back(w.text);
            },
            [&](Connection& c, const Status& st) {
              ++closes;
              why = st;
              EXPECT_TRUE(c.closed()) << "closed() is already true in the close handler";
            });
  ASSERT_TRUE(a_);
  close_b_fd_ = true;
  WriteRaw(b_fd_, bad.bytes);
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
  EXPECT_EQ(why.code(), StatusCode::kProtocolError) << why.ToString();
  EXPECT_EQ(got, std::vector<std::string>{"ok"}) << "frames before the bad one are delivered";
  EXPECT_TRUE(a_->closed());
  EXPECT_TRUE(PeerGone(b_fd_)) << "the malformed peer's socket was closed";
  // Closing again or sending afterwards is harmless and does not call the handler again.
  a_->Close(Status::Internal("again"));
  a_->Send(MessageType::kWarning, protocol::Warning{"ignored"});
  a_->Flush();
  EXPECT_EQ(closes, 1);
}

INSTANTIATE_TEST_SUITE_P(BadInput, MalformedTest, ::testing::Range(0, 5));

TEST_F(ConnectionTest, MalformedHeaderSplitAcrossReads) {
  int closes = 0;
  Status why;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) { ADD_FAILURE() << "no frame expected"; },
            [&](Connection&, const Status& st) {
              ++closes;
              why = st;
            });
  ASSERT_TRUE(a_);
  close_b_fd_ = true;
  std::string header = RawHeader(4, 9, 36);
  WriteRaw(b_fd_, header.substr(0, 5));
  loop_.RunAfter(30ms, [&] { WriteRaw(b_fd_, header.substr(5) + "abcd"); });
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
  EXPECT_EQ(why.code(), StatusCode::kProtocolError);
}

TEST_F(ConnectionTest, PeerCloseDetected) {
  int closes = 0;
  Status why;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {},
            [&](Connection&, const Status& st) {
              ++closes;
              why = st;
            });
  ASSERT_TRUE(a_);
  ::close(b_fd_);
  b_fd_ = -1;
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
  EXPECT_EQ(why.code(), StatusCode::kIOError) << why.ToString();
  EXPECT_TRUE(a_->closed());
}

TEST_F(ConnectionTest, DataBeforePeerCloseIsDeliveredFirst) {
  std::vector<std::string> events;
  a_ = Make(a_fd_,
            [&](Connection&, const protocol::Frame& f) {
              protocol::Warning w;
              EXPECT_TRUE(protocol::DecodeMessage(f.body, &w).ok());
              events.push_back("msg:" + w.text);
            },
            [&](Connection&, const Status&) { events.push_back("close"); });
  ASSERT_TRUE(a_);
  WriteRaw(b_fd_, WarningFrame("one") + WarningFrame("two"));
  ::close(b_fd_);
  b_fd_ = -1;
  ASSERT_TRUE(RunUntil([&] { return !events.empty() && events.back() == "close"; }));
  EXPECT_EQ(events, (std::vector<std::string>{"msg:one", "msg:two", "close"}));
}

TEST_F(ConnectionTest, PeerCloseMidFrame) {
  int closes = 0;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) { ADD_FAILURE() << "partial frame delivered"; },
            [&](Connection&, const Status&) { ++closes; });
  ASSERT_TRUE(a_);
  std::string frame = WarningFrame("this frame is cut short");
  WriteRaw(b_fd_, frame.substr(0, frame.size() - 3));
  ::close(b_fd_);
  b_fd_ = -1;
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
}

TEST_F(ConnectionTest, OwnerMayDropTheConnectionInItsCloseHandler) {
  // Servers erase their record of a peer (and with it the last shared_ptr) when it closes.
  int closes = 0;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {},
            [&](Connection&, const Status&) {
              ++closes;
              a_.reset();
            });
  ASSERT_TRUE(a_);
  WriteRaw(b_fd_, RawHeader(0, 77, 1));  // malformed: closes from inside the read loop
  close_b_fd_ = true;
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
  EXPECT_EQ(a_, nullptr);
}

TEST_F(ConnectionTest, OwnerMayDropTheConnectionInItsMessageHandler) {
  int messages = 0, closes = 0;
  a_ = Make(a_fd_,
            [&](Connection&, const protocol::Frame&) {
              ++messages;
              a_.reset();  // destroyed once the read loop returns; its fd is closed
            },
            [&](Connection&, const Status&) { ++closes; });
  ASSERT_TRUE(a_);
  close_b_fd_ = true;
  WriteRaw(b_fd_, WarningFrame("bye") + WarningFrame("more"));
  bool gone = false;
  ASSERT_TRUE(RunUntil([&] { return a_ == nullptr && (gone = PeerGone(b_fd_)); }));
  EXPECT_TRUE(gone);
  EXPECT_GE(messages, 1);
  EXPECT_EQ(closes, 0) << "destruction is not a close event";
}

class SendToClosedPeerTest : public ConnectionTest, public ::testing::WithParamInterface<size_t> {};

TEST_P(SendToClosedPeerTest, ClosesOnceWithoutSigpipe) {
  // Small messages go out on the loop's scheduled flush; large ones are flushed eagerly from
  // Send itself. Either way the write fails (EPIPE, no SIGPIPE) or the read sees EOF first,
  // and the close handler runs exactly once.
  size_t size = GetParam();
  int closes = 0;
  Status why;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {},
            [&](Connection&, const Status& st) {
              ++closes;
              why = st;
            });
  ASSERT_TRUE(a_);
  ::close(b_fd_);
  b_fd_ = -1;
  for (int i = 0; i < 10; ++i) a_->Send(MessageType::kWarning, protocol::Warning{std::string(size, 'x')});
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
  EXPECT_EQ(why.code(), StatusCode::kIOError) << why.ToString();
  EXPECT_TRUE(a_->closed());
}

INSTANTIATE_TEST_SUITE_P(Sizes, SendToClosedPeerTest, ::testing::Values(size_t{100}, size_t{2} << 20));

TEST_F(ConnectionTest, SendFromTheLoopToAPeerThatClosedMeanwhile) {
  int closes = 0;
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {},
            [&](Connection&, const Status&) { ++closes; });
  ASSERT_TRUE(a_);
  loop_.RunAfter(10ms, [&] {
    ::close(b_fd_);
    b_fd_ = -1;
    a_->Send(MessageType::kWarning, protocol::Warning{"into the void"});
  });
  ASSERT_TRUE(RunUntil([&] { return closes > 0; }));
  EXPECT_EQ(closes, 1);
}

TEST_F(ConnectionTest, DestroyingAnOpenConnectionClosesItsFd) {
  a_ = Make(a_fd_, [](Connection&, const protocol::Frame&) {}, nullptr);
  ASSERT_TRUE(a_);
  close_b_fd_ = true;
  a_.reset();
  EXPECT_TRUE(PeerGone(b_fd_));
}

TEST_F(ConnectionTest, CreateFailsOnABadFd) {
  auto c = Connection::Create(&loop_, -1, nullptr, nullptr);
  EXPECT_FALSE(c.ok());
  close_a_fd_ = close_b_fd_ = true;
}

TEST_F(ConnectionTest, FailedCreateLeavesTheFdToTheCaller) {
  // The servers close the fd themselves when Create fails (node_server.cc OnAccept,
  // control_server.cc OnAccept), so a failed Create must not close it too: a double close
  // could close an unrelated descriptor that reused the number in between.
  close_a_fd_ = close_b_fd_ = true;
  FILE* file = tmpfile();  // epoll refuses regular files, so Add fails
  ASSERT_NE(file, nullptr);
  int fd = fileno(file);
  auto c = Connection::Create(&loop_, fd, nullptr, nullptr);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(fcntl(fd, F_GETFD), -1) << "Create closed the fd it failed to adopt";
  fclose(file);
}

// ------------------------------------------------------------------ EventLoop basics

// Peers in one OutputBudget group that send requests and never read the (large) replies: each
// stays far under its own 64 MiB limit, but together they may not queue more than the group's
// limit plus about a fair share each; a peer of the group that reads its replies keeps being
// served meanwhile, and the others are served again once they read.
TEST_F(ConnectionTest, AGroupOfPeersThatDoNotReadIsBoundedInTotal) {
  constexpr size_t kGroupLimit = 4u << 20;
  constexpr int kRequests = 300;
  const std::string reply(256 * 1024, 'r');
  auto budget = std::make_shared<OutputBudget>(kGroupLimit);
  size_t peak = 0;
  std::shared_ptr<Connection> server[3];
  loop_.AtEndOfIteration([&] {
    size_t total = 0;
    for (auto& c : server) total += c ? c->pending_output() : 0;
    peak = std::max(peak, total);
    if (done_ && done_()) loop_.Stop();
  });
  std::string requests;
  for (int i = 0; i < kRequests; ++i) {
    protocol::AppendMessage(&requests, MessageType::kGetClusterInfo, protocol::RequestId{uint64_t(i)});
  }
  // Two servers whose peers (raw fds) never read, and a third whose peer is a reading Connection.
  int handled[3] = {0, 0, 0};
  int peer_fd[3] = {a_fd_, -1, -1};
  auto echo_big = [&](int i) {
    return [&, i](Connection& c, const protocol::Frame&) {
      ++handled[i];
      c.Send(MessageType::kWarning, protocol::Warning{reply});
    };
  };
  server[0] = Make(b_fd_, echo_big(0), nullptr);
  for (int i = 1; i < 3; ++i) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    peer_fd[i] = fds[0];
    server[i] = Make(fds[1], echo_big(i), nullptr);
  }
  for (auto& c : server) {
    ASSERT_TRUE(c);
    c->SetOutputBudget(budget);
  }
  int good_got = 0;
  auto good_peer = Make(peer_fd[2], [&](Connection&, const protocol::Frame&) { ++good_got; }, nullptr);
  ASSERT_TRUE(good_peer);
  WriteRaw(peer_fd[0], requests);
  WriteRaw(peer_fd[1], requests);
  good_peer->SendEncoded(requests);

  ASSERT_TRUE(RunUntil([&] { return good_got == kRequests; }))
      << "the reading peer got " << good_got << " of " << kRequests << " replies";
  EXPECT_LT(handled[0], kRequests) << "a peer that does not read was served on";
  EXPECT_LT(handled[1], kRequests);
  EXPECT_LE(peak, kGroupLimit + 2 * (OutputBudget::kFairShareBytes + 2 * reply.size()))
      << "queued output of the group";

  // Once the two peers read, they are served again until every request has its reply.
  std::shared_ptr<Connection> readers[2];
  int read_back[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    readers[i] = Make(peer_fd[i], [&, i](Connection&, const protocol::Frame&) { ++read_back[i]; }, nullptr);
    ASSERT_TRUE(readers[i]);
  }
  a_fd_ = -1;  // adopted by readers[0]
  b_fd_ = -1;  // adopted by server[0]
  bool all = false;
  done_ = [&] { return all = read_back[0] == kRequests && read_back[1] == kRequests; };
  auto timed_out = std::make_shared<bool>(false);  // outlives this run, unlike RunUntil's flag
  loop_.RunAfter(20s, [this, timed_out] {
    *timed_out = true;
    loop_.Stop();
  });
  loop_.Run();  // a stopped loop may run again (event_loop.h)
  EXPECT_TRUE(all) << "replies read after resuming: " << read_back[0] << ", " << read_back[1];
  EXPECT_EQ(handled[0], kRequests);
  EXPECT_EQ(handled[1], kRequests);
  for (auto& c : server) c.reset();
  for (auto& c : readers) c.reset();
  good_peer.reset();
  EXPECT_EQ(budget->total(), 0u) << "closed connections give their share back";
}

TEST(EventLoop, TimersRunInDeadlineOrder) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  std::vector<int> order;
  loop.RunAfter(30ms, [&] {
    order.push_back(3);
    loop.Stop();
  });
  loop.RunAfter(10ms, [&] { order.push_back(2); });
  loop.RunAfter(0ms, [&] { order.push_back(1); });
  loop.RunAfter(0ms, [&] { order.push_back(11); });  // same deadline: submission order
  loop.Run();
  EXPECT_EQ(order, (std::vector<int>{1, 11, 2, 3}));
}

TEST(EventLoop, StopFromAnotherThread) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    loop.Stop();
  });
  auto start = std::chrono::steady_clock::now();
  loop.Run();  // no fds, no timers: returns only because of Stop()
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace quanta::net
