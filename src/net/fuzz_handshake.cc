// libFuzzer target: the Handshake state machine (net/handshake.h) over a socketpair, as a
// server fed arbitrary client bytes and as a client fed arbitrary server bytes, plus two
// "cooperative" modes in which the harness plays a correct peer whose fields (versions,
// channel, magic, nonces, whether its MAC or proof is right, the Welcome byte) come from the
// input, so the fuzzer reaches every stage, including success.
//
// Checked, beyond "no crash" and ASan/UBSan findings:
//   * it never reads past the handshake: a server consumes at most 44 + 32 bytes, a client at
//     most 76 + 4, whatever follows stays in the socket for the frames;
//   * it never writes more than its own messages (server 76 + 4, client 44 + 32);
//   * after the peer closes, Step() finishes (done or an error), it never waits for more;
//   * in the cooperative modes, the outcome is the specified one: the version chosen is the
//     highest common one, a refusal carries version 0 and no proof, a non-overlapping or
//     out-of-range version fails with "protocol version mismatch", a wrong MAC or proof fails,
//     and a correct exchange succeeds.
//
// Build: cmake -DQUANTA_BUILD_FUZZERS=ON with clang (scripts/fuzz.sh). Seeds: fuzz_corpus/handshake.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net/auth.h"
#include "net/handshake.h"

using namespace quanta;
using net::Handshake;

namespace {

const net::ClusterToken kToken{"fuzz-cluster-token-0123456789abcdef", "fuzz"};
constexpr uint16_t kV = 2;  // what the machine under test speaks in the raw modes

[[noreturn]] void Fail(const char* what, long a = 0, long b = 0) {
  std::fprintf(stderr, "fuzz_handshake: %s (%ld, %ld)\n", what, a, b);
  std::abort();
}

void PutU16(std::string* s, uint16_t v) { s->append(reinterpret_cast<const char*>(&v), 2); }
uint16_t GetU16(const std::string& s, size_t at) {
  uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}

std::string Mac(const char* label, uint8_t channel, const std::string& a, const std::string& b) {
  std::string data(label);
  data.push_back(static_cast<char>(channel));
  return net::HmacSha256(kToken.secret, data + a + b);
}

struct Pair {
  int machine = -1, peer = -1;
  size_t written_to_machine = 0;
  std::string from_machine;
  Pair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) Fail("socketpair");
    machine = sv[0];
    peer = sv[1];
  }
  ~Pair() {
    if (machine >= 0) ::close(machine);
    if (peer >= 0) ::close(peer);
  }
  void Write(const std::string& data) {
    if (data.empty()) return;
    ssize_t n = ::send(peer, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) written_to_machine += static_cast<size_t>(n);
  }
  void Drain() {
    char buf[512];
    while (true) {
      ssize_t n = ::recv(peer, buf, sizeof buf, 0);
      if (n <= 0) return;
      from_machine.append(buf, static_cast<size_t>(n));
    }
  }
  size_t Unread() const {
    int n = 0;
    if (ioctl(machine, FIONREAD, &n) != 0) Fail("FIONREAD");
    return static_cast<size_t>(n);
  }
  size_t Consumed() const { return written_to_machine - Unread(); }
};

// Steps until the machine wants input it does not have, finishes, or fails.
Result<Handshake::Progress> Run(Handshake& hs, Pair& p) {
  for (int i = 0; i < 16; ++i) {
    auto r = hs.Step(p.machine);
    p.Drain();
    if (!r.ok() || r.value() != Handshake::Progress::kWantWrite) return r;
  }
  Fail("the handshake keeps wanting to write to an empty socket");
}

void CheckLimits(const Pair& p, bool server) {
  size_t max_read = server ? Handshake::kClientHelloSize + Handshake::kProofSize
                           : Handshake::kChallengeSize + Handshake::kWelcomeSize;
  size_t max_write = server ? Handshake::kChallengeSize + Handshake::kWelcomeSize
                            : Handshake::kClientHelloSize + Handshake::kProofSize;
  if (p.Consumed() > max_read) Fail("read past the handshake", static_cast<long>(p.Consumed()), server);
  if (p.from_machine.size() > max_write) Fail("wrote more than its messages", static_cast<long>(p.from_machine.size()));
}

// After the peer half-closes, the machine must finish rather than wait.
void CheckFinishesOnClose(Handshake& hs, Pair& p) {
  ::shutdown(p.peer, SHUT_WR);
  auto r = Run(hs, p);
  if (r.ok() && r.value() != Handshake::Progress::kDone) Fail("still waiting after the peer closed");
}

void RawMode(FuzzedDataProvider& fdp, bool server) {
  Pair p;
  uint16_t lo = fdp.ConsumeBool() ? kV : fdp.ConsumeIntegralInRange<uint16_t>(0, 4);
  uint16_t hi = fdp.ConsumeBool() ? kV : fdp.ConsumeIntegralInRange<uint16_t>(0, 4);
  auto channel = static_cast<net::Channel>(fdp.ConsumeIntegralInRange<uint8_t>(1, 5));
  Handshake hs(server ? Handshake::Role::kServer : Handshake::Role::kClient, channel, &kToken, lo, hi);
  bool finished = false;
  while (fdp.remaining_bytes() > 0 && !finished) {
    p.Write(fdp.ConsumeBytesAsString(fdp.ConsumeIntegralInRange<size_t>(1, 96)));
    auto r = Run(hs, p);
    finished = !r.ok() || r.value() == Handshake::Progress::kDone;
    CheckLimits(p, server);
  }
  if (!finished) CheckFinishesOnClose(hs, p);
  CheckLimits(p, server);
}

// The machine is a server; the harness a client that follows the protocol with fuzzed fields.
void CooperativeClient(FuzzedDataProvider& fdp) {
  Pair p;
  uint16_t smin = fdp.ConsumeIntegralInRange<uint16_t>(1, 4), smax = fdp.ConsumeIntegralInRange<uint16_t>(1, 4);
  uint16_t cmin = fdp.ConsumeIntegralInRange<uint16_t>(0, 5), cmax = fdp.ConsumeIntegralInRange<uint16_t>(0, 5);
  uint8_t channel = fdp.ConsumeIntegralInRange<uint8_t>(0, 6);
  bool bad_magic = fdp.ConsumeIntegralInRange<int>(0, 15) == 0;
  bool bad_proof = fdp.ConsumeBool();
  std::string nonce_c = fdp.ConsumeBytesAsString(32);
  nonce_c.resize(32, '\0');
  Handshake hs(Handshake::Role::kServer, net::Channel::kControl, &kToken, smin, smax);

  std::string hello(bad_magic ? "QNTX" : "QNTA");
  PutU16(&hello, cmin);
  PutU16(&hello, cmax);
  hello.push_back(static_cast<char>(channel));
  hello.append(3, '\0');
  hello += nonce_c;
  // The Hello may arrive in pieces.
  size_t cut = fdp.ConsumeIntegralInRange<size_t>(0, hello.size());
  p.Write(hello.substr(0, cut));
  auto r = Run(hs, p);
  if (cut < hello.size()) {
    if (!r.ok() || r.value() != Handshake::Progress::kWantRead) Fail("a partial Hello did not make it wait");
    p.Write(hello.substr(cut));
    r = Run(hs, p);
  }
  CheckLimits(p, true);
  if (bad_magic || channel < 1 || channel > 5) {  // 5: the highest channel, "lane"
    if (r.ok()) Fail("a Hello with a bad magic or channel was accepted");
    if (!p.from_machine.empty()) Fail("answered a malformed Hello");
    return;
  }
  uint16_t lo = std::max(smin, cmin), hi = std::min(smax, cmax);
  bool overlap = lo <= hi;
  if (p.from_machine.size() != Handshake::kChallengeSize) Fail("no whole Challenge", static_cast<long>(p.from_machine.size()));
  const std::string& ch = p.from_machine;
  if (ch.compare(0, 4, "QNTA") != 0) Fail("Challenge magic");
  if (GetU16(ch, 6) != smin || GetU16(ch, 8) != smax || GetU16(ch, 10) != 0) Fail("Challenge range");
  if (!overlap) {
    if (GetU16(ch, 4) != 0) Fail("no common version, yet not refused");
    if (ch.substr(44) != std::string(32, '\0')) Fail("a refusal carries a proof");
    if (r.ok()) Fail("a version mismatch did not fail");
    if (r.status().message().find("protocol version mismatch") == std::string::npos) Fail("mismatch message");
    return;
  }
  if (GetU16(ch, 4) != hi) Fail("not the highest common version", GetU16(ch, 4), hi);
  std::string nonce_s = ch.substr(12, 32);
  if (ch.substr(44) != Mac("quanta server", channel, nonce_c, nonce_s)) Fail("the server's proof is wrong");
  if (!r.ok() || r.value() != Handshake::Progress::kWantRead) Fail("not waiting for the Proof");
  std::string proof = Mac("quanta client", channel, nonce_s, nonce_c);
  if (bad_proof) proof[fdp.ConsumeIntegralInRange<size_t>(0, 31)] ^= static_cast<char>(1 + fdp.ConsumeIntegral<uint8_t>() % 255);
  p.Write(proof + fdp.ConsumeRemainingBytesAsString());  // frames may follow at once
  r = Run(hs, p);
  CheckLimits(p, true);
  if (p.Consumed() != Handshake::kClientHelloSize + Handshake::kProofSize) Fail("consumed != Hello + Proof");
  if (p.from_machine.size() != Handshake::kChallengeSize + Handshake::kWelcomeSize) Fail("no Welcome");
  uint8_t welcome = static_cast<uint8_t>(p.from_machine[Handshake::kChallengeSize]);
  if (bad_proof) {
    if (r.ok() || welcome != 2) Fail("a wrong proof was accepted");
  } else {
    if (!r.ok() || r.value() != Handshake::Progress::kDone || welcome != 1) Fail("a correct proof was refused");
    if (hs.version() != hi || static_cast<uint8_t>(hs.channel()) != channel) Fail("version or channel");
  }
}

// The machine is a client; the harness a server that follows the protocol with fuzzed fields.
void CooperativeServer(FuzzedDataProvider& fdp) {
  Pair p;
  uint16_t cmin = fdp.ConsumeIntegralInRange<uint16_t>(1, 4), cmax = fdp.ConsumeIntegralInRange<uint16_t>(1, 4);
  auto channel = fdp.ConsumeIntegralInRange<uint8_t>(1, 5);
  uint16_t version = fdp.ConsumeIntegralInRange<uint16_t>(0, 5);
  uint16_t smin = fdp.ConsumeIntegralInRange<uint16_t>(0, 5), smax = fdp.ConsumeIntegralInRange<uint16_t>(0, 5);
  bool bad_magic = fdp.ConsumeIntegralInRange<int>(0, 15) == 0;
  bool bad_mac = fdp.ConsumeBool();
  uint8_t welcome = fdp.ConsumeBool() ? 1 : fdp.ConsumeIntegral<uint8_t>();
  Handshake hs(Handshake::Role::kClient, static_cast<net::Channel>(channel), &kToken, cmin, cmax);
  auto r = Run(hs, p);
  if (!r.ok() || r.value() != Handshake::Progress::kWantRead) Fail("client did not send its Hello and wait");
  const std::string hello = p.from_machine;
  if (hello.size() != Handshake::kClientHelloSize || hello.compare(0, 4, "QNTA") != 0 || GetU16(hello, 4) != cmin ||
      GetU16(hello, 6) != cmax || static_cast<uint8_t>(hello[8]) != channel || hello.compare(9, 3, std::string(3, '\0')) != 0) {
    Fail("malformed Hello");
  }
  std::string nonce_c = hello.substr(12, 32);
  std::string nonce_s = fdp.ConsumeBytesAsString(32);
  nonce_s.resize(32, '\x5a');
  std::string ch(bad_magic ? "XNTA" : "QNTA");
  PutU16(&ch, version);
  PutU16(&ch, smin);
  PutU16(&ch, smax);
  PutU16(&ch, 0);
  ch += nonce_s;
  std::string mac = Mac("quanta server", channel, nonce_c, nonce_s);
  if (bad_mac) mac[fdp.ConsumeIntegralInRange<size_t>(0, 31)] ^= static_cast<char>(1 + fdp.ConsumeIntegral<uint8_t>() % 255);
  ch += mac;
  size_t cut = fdp.ConsumeIntegralInRange<size_t>(0, ch.size());
  p.Write(ch.substr(0, cut));
  r = Run(hs, p);
  if (cut < ch.size()) {
    if (!r.ok() || r.value() != Handshake::Progress::kWantRead) Fail("a partial Challenge did not make it wait");
    p.Write(ch.substr(cut));
    r = Run(hs, p);
  }
  CheckLimits(p, false);
  bool version_ok = version != 0 && version >= cmin && version <= cmax;
  if (bad_magic || !version_ok || bad_mac) {
    if (r.ok()) Fail("the client accepted a bad Challenge", version, bad_mac);
    if (p.from_machine.size() != Handshake::kClientHelloSize) Fail("the client sent a proof to a bad Challenge");
    if (!bad_magic && !version_ok && r.status().message().find("protocol version mismatch") == std::string::npos) {
      Fail("a version the client does not speak is not reported as a mismatch", version);
    }
    return;
  }
  if (!r.ok() || r.value() != Handshake::Progress::kWantRead) Fail("not waiting for the Welcome");
  if (p.from_machine.substr(Handshake::kClientHelloSize) != Mac("quanta client", channel, nonce_s, nonce_c)) {
    Fail("the client's proof is wrong");
  }
  std::string w(4, '\0');
  w[0] = static_cast<char>(welcome);
  p.Write(w + fdp.ConsumeRemainingBytesAsString());
  r = Run(hs, p);
  CheckLimits(p, false);
  if (p.Consumed() != Handshake::kChallengeSize + Handshake::kWelcomeSize) Fail("consumed != Challenge + Welcome");
  if (welcome == 1) {
    if (!r.ok() || r.value() != Handshake::Progress::kDone || hs.version() != version) Fail("a correct exchange failed");
  } else if (r.ok()) {
    Fail("a refusing Welcome was taken for success", welcome);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: RawMode(fdp, true); break;
    case 1: RawMode(fdp, false); break;
    case 2: CooperativeClient(fdp); break;
    case 3: CooperativeServer(fdp); break;
  }
  return 0;
}
