// The handshake state machine between two in-process ends of a socketpair.
#include "net/handshake.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace quanta::net {
namespace {

struct Ends {
  int a = -1, b = -1;
  Ends() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    a = sv[0];
    b = sv[1];
  }
  ~Ends() {
    ::close(a);
    ::close(b);
  }
};

// Steps both sides until neither progresses; returns (client status, server status).
std::pair<Status, Status> Exchange(Handshake& client, Handshake& server, const Ends& e) {
  Status cs, ss;
  bool cdone = false, sdone = false;
  for (int i = 0; i < 20 && !(cdone && sdone); ++i) {
    if (!cdone) {
      auto r = client.Step(e.a);
      if (!r.ok()) cs = r.status(), cdone = true, ::shutdown(e.a, SHUT_RDWR);  // as a daemon closes it
      else if (r.value() == Handshake::Progress::kDone) cdone = true;
    }
    if (!sdone) {
      auto r = server.Step(e.b);
      if (!r.ok()) ss = r.status(), sdone = true, ::shutdown(e.b, SHUT_RDWR);
      else if (r.value() == Handshake::Progress::kDone) sdone = true;
    }
  }
  EXPECT_TRUE(cdone && sdone) << "the handshake did not finish";
  return {cs, ss};
}

const ClusterToken kToken{"a-token-for-the-handshake-test", "test"};
const ClusterToken kOther{"another-token-for-the-handshake", "test"};

TEST(Handshake, SameTokenSucceedsOnTheRequestedChannel) {
  Ends e;
  Handshake c(Handshake::Role::kClient, Channel::kPeer, &kToken, 2, 2);
  Handshake s(Handshake::Role::kServer, Channel::kControl, &kToken, 2, 2);
  auto [cs, ss] = Exchange(c, s, e);
  EXPECT_TRUE(cs.ok()) << cs.ToString();
  EXPECT_TRUE(ss.ok()) << ss.ToString();
  EXPECT_EQ(s.channel(), Channel::kPeer);
  EXPECT_EQ(c.version(), 2);
}

TEST(Handshake, WrongTokenFailsOnBothSides) {
  Ends e;
  Handshake c(Handshake::Role::kClient, Channel::kControl, &kOther, 2, 2);
  Handshake s(Handshake::Role::kServer, Channel::kControl, &kToken, 2, 2);
  auto [cs, ss] = Exchange(c, s, e);
  EXPECT_FALSE(cs.ok());
  EXPECT_NE(cs.message().find("token"), std::string::npos) << cs.message();
  // The client noticed first (the server's MAC), so the server saw it hang up or a bad proof.
  EXPECT_FALSE(ss.ok());
}

TEST(Handshake, DisjointVersionsAreRefusedNamingBothRanges) {
  Ends e;
  Handshake c(Handshake::Role::kClient, Channel::kControl, &kToken, 7, 9);
  Handshake s(Handshake::Role::kServer, Channel::kControl, &kToken, 2, 3);
  auto [cs, ss] = Exchange(c, s, e);
  ASSERT_FALSE(cs.ok());
  ASSERT_FALSE(ss.ok());
  for (const Status* st : {&cs, &ss}) {
    EXPECT_NE(st->message().find("protocol version mismatch"), std::string::npos) << st->message();
    EXPECT_NE(st->message().find("7-9"), std::string::npos) << st->message();
    EXPECT_NE(st->message().find("2-3"), std::string::npos) << st->message();
  }
}

TEST(Handshake, OverlappingRangesPickTheHighestCommonVersion) {
  Ends e;
  Handshake c(Handshake::Role::kClient, Channel::kControl, &kToken, 2, 5);
  Handshake s(Handshake::Role::kServer, Channel::kControl, &kToken, 1, 4);
  auto [cs, ss] = Exchange(c, s, e);
  EXPECT_TRUE(cs.ok() && ss.ok());
  EXPECT_EQ(c.version(), 4);
  EXPECT_EQ(s.version(), 4);
}

TEST(Handshake, ClientRefusesAVersionOutsideItsRange) {
  // A server that answers with a version the client never offered (its own range only).
  Ends e;
  Handshake c(Handshake::Role::kClient, Channel::kControl, &kToken, 2, 2);
  auto r = c.Step(e.a);
  ASSERT_TRUE(r.ok());
  char hello[Handshake::kClientHelloSize];
  ASSERT_EQ(::recv(e.b, hello, sizeof hello, 0), static_cast<ssize_t>(sizeof hello));
  std::string challenge("QNTA");
  for (uint16_t v : {uint16_t{7}, uint16_t{7}, uint16_t{9}, uint16_t{0}}) challenge.append(reinterpret_cast<char*>(&v), 2);
  challenge.append(64, 'x');
  ASSERT_EQ(::send(e.b, challenge.data(), challenge.size(), 0), static_cast<ssize_t>(challenge.size()));
  r = c.Step(e.a);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("protocol version mismatch"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("7-9"), std::string::npos) << r.status().message();
  char extra;
  EXPECT_LT(::recv(e.b, &extra, 1, 0), 1) << "the client sent a proof after a bad version";
}

}  // namespace
}  // namespace quanta::net

namespace quanta::net {
namespace {

TEST(HmacKeyTest, SignsAsTheOneShotHmacDoes) {
  HmacKey key("a cluster token of some length");
  for (std::string data : {std::string(), std::string("quanta lane call"), std::string(1000, 'x')}) {
    EXPECT_EQ(key.Sign(data), HmacSha256("a cluster token of some length", data));
    EXPECT_EQ(key.Sign(data).size(), 32u);
  }
  EXPECT_NE(key.Sign("a"), HmacKey("another token").Sign("a"));
}

}  // namespace
}  // namespace quanta::net
