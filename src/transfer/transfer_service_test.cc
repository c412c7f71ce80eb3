// Unit tests for transfer/transfer_service.h. The receiving side reads a real socketpair on
// which the test writes the wire format by hand (so it can send what a correct sender never
// would: bad checksums, chunks past the end, repeats, a channel cut mid-chunk); the sending
// side runs end to end over loopback TCP with the real handshake into a second service.
#include "transfer/transfer_service.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "net/handshake.h"
#include "net/listener.h"
#include "net/socket.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed + (i >> 9));
  return v;
}

void WriteAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    ASSERT_GT(w, 0) << std::strerror(errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// One chunk as a sender puts it on the wire; `bytes` may be shorter than `len` (a cut).
void WriteChunk(int fd, uint64_t id, uint64_t offset, const uint8_t* data, uint32_t len, uint32_t crc,
                size_t bytes) {
  uint8_t h[24];
  std::memcpy(h, &id, 8);
  std::memcpy(h + 8, &offset, 8);
  std::memcpy(h + 16, &len, 4);
  std::memcpy(h + 20, &crc, 4);
  WriteAll(fd, h, sizeof h);
  if (bytes > 0) WriteAll(fd, data, bytes);
}
void WriteChunk(int fd, uint64_t id, uint64_t offset, const uint8_t* data, uint32_t len) {
  WriteChunk(fd, id, offset, data, len, Crc32c(data, len), len);
}

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    token_.secret = "0123456789abcdef0123456789abcdef";
    token_.source = "test";
    receiver_ = Make(2);
  }
  void TearDown() override {
    if (test_fd_ >= 0) ::close(test_fd_);
    sender_.reset();
    receiver_.reset();
    listener_.reset();
    handshakes_.reset();
  }
  std::unique_ptr<TransferService> Make(uint32_t index, const net::ClusterToken* token = nullptr) {
    return std::make_unique<TransferService>(
        &loop_, token ? token : &token_, index,
        TransferService::Callbacks{[this](uint64_t id, const Status& st) { received_[id].push_back(st); },
                                   [this](uint64_t id, const Status& st) { sent_[id].push_back(st); }});
  }
  // A channel "from node 7" into the receiver; the test writes its other end.
  void OpenChannel() {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    receiver_->AdoptInbound(fds[0], "test-peer");
    test_fd_ = fds[1];
    uint32_t from = 7;
    WriteAll(test_fd_, &from, 4);
  }
  void CloseChannel() {
    ::close(test_fd_);
    test_fd_ = -1;
  }
  // The receiver's listener, as a node's: handshake, then data channels to the service.
  uint16_t Listen(const net::ClusterToken* token) {
    handshakes_ = std::make_unique<net::HandshakeDriver>(&loop_, token, 5000ms, 16);
    auto l = net::Listener::Tcp(&loop_, "127.0.0.1", 0, [this](int fd) {
      handshakes_->Accept(fd, "peer", [this](Result<int> done, net::Channel ch) {
        if (done.ok() && ch == net::Channel::kData) receiver_->AdoptInbound(done.value(), "peer");
      });
    });
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    listener_ = std::move(l).value();
    return listener_->port();
  }
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_.RunAfter(5ms, [this] { loop_.Stop(); });
      loop_.Run();
    }
    return true;
  }
  bool Received(uint64_t id) { return received_.count(id) > 0; }
  // Runs the loop a little and reports whether anything arrived for `id` (for "must not").
  bool ReceivedWithin(uint64_t id, std::chrono::milliseconds t) { return RunUntil([&] { return Received(id); }, t); }

  net::EventLoop loop_;
  net::ClusterToken token_;
  std::unique_ptr<TransferService> receiver_, sender_;
  std::unique_ptr<net::HandshakeDriver> handshakes_;
  std::unique_ptr<net::Listener> listener_;
  int test_fd_ = -1;
  std::map<uint64_t, std::vector<Status>> received_, sent_;
};

TEST_F(TransferTest, ChunksLandInPlaceAndTheTransferCompletes) {
  auto src = Pattern(10000, 1);
  std::vector<uint8_t> dest(src.size(), 0);
  receiver_->Expect(11, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 11, 0, src.data(), 6000);
  WriteChunk(test_fd_, 11, 6000, src.data() + 6000, 4000);
  ASSERT_TRUE(RunUntil([&] { return Received(11); }));
  ASSERT_EQ(received_[11].size(), 1u);
  EXPECT_TRUE(received_[11][0].ok()) << received_[11][0].ToString();
  EXPECT_EQ(dest, src);
  EXPECT_EQ(receiver_->stats().transfers_received.load(), 1u);
  EXPECT_EQ(receiver_->stats().chunks_received.load(), 2u);
  EXPECT_EQ(receiver_->stats().bytes_received.load(), 10000u);
}

TEST_F(TransferTest, AnEmptyObjectCompletesAtOnce) {
  receiver_->Expect(12, nullptr, 0);
  ASSERT_TRUE(RunUntil([&] { return Received(12); }));
  EXPECT_TRUE(received_[12][0].ok());
}

TEST_F(TransferTest, InterleavedTransfersOnOneChannel) {
  auto a = Pattern(8192, 2), b = Pattern(8192, 3);
  std::vector<uint8_t> da(a.size()), db(b.size());
  receiver_->Expect(1, da.data(), da.size());
  receiver_->Expect(2, db.data(), db.size());
  OpenChannel();
  WriteChunk(test_fd_, 1, 0, a.data(), 4096);
  WriteChunk(test_fd_, 2, 0, b.data(), 4096);
  WriteChunk(test_fd_, 1, 4096, a.data() + 4096, 4096);
  WriteChunk(test_fd_, 2, 4096, b.data() + 4096, 4096);
  ASSERT_TRUE(RunUntil([&] { return Received(1) && Received(2); }));
  EXPECT_TRUE(received_[1][0].ok());
  EXPECT_TRUE(received_[2][0].ok());
  EXPECT_EQ(da, a);
  EXPECT_EQ(db, b);
}

TEST_F(TransferTest, ABadChecksumFailsTheTransferAndTheChannelGoesOn) {
  auto src = Pattern(4096, 4);
  std::vector<uint8_t> dest(src.size());
  receiver_->Expect(21, dest.data(), dest.size());
  receiver_->Expect(22, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 21, 0, src.data(), 4096, Crc32c(src.data(), 4096) ^ 1, 4096);
  ASSERT_TRUE(RunUntil([&] { return Received(21); }));
  ASSERT_EQ(received_[21].size(), 1u);
  EXPECT_EQ(received_[21][0].code(), StatusCode::kIOError);
  EXPECT_NE(received_[21][0].message().find("checksum"), std::string::npos) << received_[21][0].message();
  EXPECT_EQ(receiver_->stats().checksum_failures.load(), 1u);
  // More chunks of the failed transfer are dropped; the next transfer on the channel works.
  WriteChunk(test_fd_, 21, 0, src.data(), 4096);
  WriteChunk(test_fd_, 22, 0, src.data(), 4096);
  ASSERT_TRUE(RunUntil([&] { return Received(22); }));
  EXPECT_TRUE(received_[22][0].ok());
  EXPECT_EQ(received_[21].size(), 1u) << "reported once";
}

TEST_F(TransferTest, AChunkBeyondTheEndFailsTheTransfer) {
  auto src = Pattern(4096, 5);
  std::vector<uint8_t> dest(1000);
  receiver_->Expect(31, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 31, 900, src.data(), 200);  // 900 + 200 > 1000
  ASSERT_TRUE(RunUntil([&] { return Received(31); }));
  EXPECT_EQ(received_[31][0].code(), StatusCode::kProtocolError);
  // An offset far past the end (an overflow attempt) is refused too.
  std::vector<uint8_t> d2(1000);
  receiver_->Expect(32, d2.data(), d2.size());
  WriteChunk(test_fd_, 32, ~0ull - 10, src.data(), 100);
  ASSERT_TRUE(RunUntil([&] { return Received(32); }));
  EXPECT_EQ(received_[32][0].code(), StatusCode::kProtocolError);
}

TEST_F(TransferTest, ARepeatedChunkDoesNotCompleteATransferWithAHole) {
  // 8 KiB expected; the first 4 KiB twice must not count as 8 KiB received.
  auto src = Pattern(8192, 6);
  std::vector<uint8_t> dest(8192, 0);
  receiver_->Expect(41, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 41, 0, src.data(), 4096);
  WriteChunk(test_fd_, 41, 0, src.data(), 4096);
  ASSERT_TRUE(RunUntil([&] { return Received(41); }, 3s)) << "the repeat should fail the transfer";
  EXPECT_FALSE(received_[41][0].ok()) << "bytes 4096..8191 never arrived";
}

TEST_F(TransferTest, ChunksOfUnknownTransfersAreReadAndDropped) {
  auto src = Pattern(100000, 7);
  std::vector<uint8_t> dest(src.size());
  OpenChannel();
  WriteChunk(test_fd_, 999, 0, src.data(), 100000);  // nobody expects 999 (e.g. abandoned earlier)
  receiver_->Expect(51, dest.data(), dest.size());
  WriteChunk(test_fd_, 51, 0, src.data(), 100000);
  ASSERT_TRUE(RunUntil([&] { return Received(51); }));
  EXPECT_TRUE(received_[51][0].ok());
  EXPECT_EQ(dest, src);
  EXPECT_FALSE(Received(999));
}

TEST_F(TransferTest, AbandonReportsCancelledOnceAndLaterChunksAreDropped) {
  auto src = Pattern(4096, 8);
  std::vector<uint8_t> dest(4096, 0);
  receiver_->Expect(61, dest.data(), dest.size());
  receiver_->Abandon(61);
  receiver_->Abandon(61);
  receiver_->Abandon(12345);  // unknown: nothing
  ASSERT_TRUE(RunUntil([&] { return Received(61); }));
  EXPECT_EQ(received_[61][0].code(), StatusCode::kCancelled);
  OpenChannel();
  WriteChunk(test_fd_, 61, 0, src.data(), 4096);
  receiver_->Expect(62, dest.data(), 16);
  WriteChunk(test_fd_, 62, 0, src.data() + 100, 16);
  ASSERT_TRUE(RunUntil([&] { return Received(62); }));
  EXPECT_EQ(received_[61].size(), 1u);
  EXPECT_FALSE(Received(12345));
  EXPECT_EQ(std::memcmp(dest.data(), src.data() + 100, 16), 0);
  EXPECT_EQ(dest[16], 0) << "the abandoned transfer's bytes were not written";
}

TEST_F(TransferTest, AChannelThatEndsBetweenChunksFailsWhatItWasDelivering) {
  auto src = Pattern(8192, 9);
  std::vector<uint8_t> dest(8192);
  receiver_->Expect(71, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 71, 0, src.data(), 4096);
  ASSERT_FALSE(ReceivedWithin(71, 200ms));
  CloseChannel();
  ASSERT_TRUE(RunUntil([&] { return Received(71); }));
  EXPECT_EQ(received_[71][0].code(), StatusCode::kIOError);
  EXPECT_NE(received_[71][0].message().find("ended mid-transfer"), std::string::npos) << received_[71][0].message();
}

TEST_F(TransferTest, AChannelCutInsideTheFirstChunkFailsTheTransferPromptly) {
  // The sender died while sending the very first chunk: the transfer must fail now, not wait
  // for the puller's deadline (10 s and more).
  auto src = Pattern(8192, 10);
  std::vector<uint8_t> dest(8192);
  receiver_->Expect(81, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 81, 0, src.data(), 8192, Crc32c(src.data(), 8192), 3000);  // 3000 of 8192 bytes
  CloseChannel();
  ASSERT_TRUE(RunUntil([&] { return Received(81); }, 3s)) << "no answer for a transfer whose channel is gone";
  EXPECT_EQ(received_[81][0].code(), StatusCode::kIOError);
}

TEST_F(TransferTest, AnOversizedChunkHeaderEndsTheChannel) {
  auto src = Pattern(4096, 11);
  std::vector<uint8_t> dest(8192);
  receiver_->Expect(91, dest.data(), dest.size());
  OpenChannel();
  WriteChunk(test_fd_, 91, 0, src.data(), 4096);
  ASSERT_FALSE(ReceivedWithin(91, 100ms));
  uint32_t huge = TransferService::kMaxChunk + 1;
  WriteChunk(test_fd_, 91, 4096, src.data(), huge, 0, 0);
  ASSERT_TRUE(RunUntil([&] { return Received(91); }));
  EXPECT_FALSE(received_[91][0].ok());
  EXPECT_NE(received_[91][0].message().find("over the limit"), std::string::npos) << received_[91][0].message();
}

// ---- sending, over TCP with the handshake

TEST_F(TransferTest, SendsOverTcpInterleavingObjects) {
  uint16_t port = Listen(&token_);
  sender_ = Make(5);
  auto one = Pattern(1, 12), five = Pattern((5u << 20) + 3, 13), nine = Pattern(9u << 20, 14);
  std::vector<uint8_t> d1(one.size()), d5(five.size()), d9(nine.size());
  receiver_->Expect(101, d1.data(), d1.size());
  receiver_->Expect(105, d5.data(), d5.size());
  receiver_->Expect(109, d9.data(), d9.size());
  sender_->Send(2, "127.0.0.1", port, 109, nine.data(), nine.size(), 9);
  sender_->Send(2, "127.0.0.1", port, 105, five.data(), five.size(), 5);
  sender_->Send(2, "127.0.0.1", port, 101, one.data(), one.size(), 1);
  ASSERT_TRUE(RunUntil([&] { return received_.size() == 3 && sent_.size() == 3; }, 30s));
  for (uint64_t id : {101, 105, 109}) EXPECT_TRUE(received_[id][0].ok()) << id << ": " << received_[id][0].ToString();
  for (uint64_t id : {1, 5, 9}) EXPECT_TRUE(sent_[id][0].ok()) << id;
  EXPECT_EQ(d1, one);
  EXPECT_EQ(d5, five);
  EXPECT_EQ(d9, nine);
  // 1 + 2 + 3 chunks of at most 4 MiB.
  EXPECT_EQ(sender_->stats().chunks_sent.load(), 6u);
  EXPECT_EQ(sender_->stats().bytes_sent.load(), one.size() + five.size() + nine.size());
}

TEST_F(TransferTest, SendToANodeNobodyListensOnFails) {
  uint16_t port = 0;
  {
    // A port that was free a moment ago and has no listener now.
    auto l = net::Listener::Tcp(&loop_, "127.0.0.1", 0, [](int fd) { ::close(fd); });
    ASSERT_TRUE(l.ok());
    port = (*l)->port();
  }
  sender_ = Make(5);
  auto src = Pattern(100, 15);
  sender_->Send(2, "127.0.0.1", port, 201, src.data(), src.size(), 77);
  ASSERT_TRUE(RunUntil([&] { return sent_.count(77) > 0; }));
  EXPECT_FALSE(sent_[77][0].ok());
}

TEST_F(TransferTest, SendWithTheWrongTokenFails) {
  net::ClusterToken other{"ffffffffffffffffffffffffffffffff", "other cluster"};
  uint16_t port = Listen(&other);
  sender_ = Make(5);
  auto src = Pattern(100, 16);
  std::vector<uint8_t> dest(100);
  receiver_->Expect(301, dest.data(), dest.size());
  sender_->Send(2, "127.0.0.1", port, 301, src.data(), src.size(), 78);
  ASSERT_TRUE(RunUntil([&] { return sent_.count(78) > 0; }));
  EXPECT_FALSE(sent_[78][0].ok());
  EXPECT_FALSE(Received(301)) << "nothing reached the receiver";
}

}  // namespace
}  // namespace quanta
