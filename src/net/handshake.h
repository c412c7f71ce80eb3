// The handshake that opens every TCP connection: protocol versions and mutual proof of the
// cluster token (docs/cluster-design.md §2, docs/security.md).
//
//   client -> server  ClientHello  "QNTA" u16 min u16 max u8 channel u8[3] 0  nonce_c[32]   (44 bytes)
//   server -> client  Challenge    "QNTA" u16 version (0: refused) u16 min u16 max u16 0
//                                  nonce_s[32] HMAC(token, "quanta server" ch nonce_c nonce_s)  (76 bytes)
//   client -> server  Proof        HMAC(token, "quanta client" ch nonce_s nonce_c)             (32 bytes)
//   server -> client  Welcome      u8 status (1 ok, 2 wrong token) u8[3] 0                     (4 bytes)
//
// Every message has a fixed size, so neither side ever reads past the handshake into the
// frames that follow, and an unauthenticated peer costs a fixed 128-byte buffer.
//
// Handshake is a pure state machine over a non-blocking fd (Step() until done), used on event
// loops by HandshakeDriver; Blocking() runs a whole client handshake with a deadline.
// Thread-safety: one instance per connection, used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "net/auth.h"
#include "net/event_loop.h"
#include "protocol/frame.h"

namespace quanta::net {

// The protocol versions this build speaks (one today; a range once versions must interoperate).
inline uint16_t protocol_min_version() { return protocol::kProtocolVersion; }
inline uint16_t protocol_max_version() { return protocol::kProtocolVersion; }

// What a connection is for; bound into the proofs, so a proof for one cannot open another.
enum class Channel : uint8_t {
  kControl = 1,  // node -> control service
  kPeer = 2,     // node -> node messages (the sender's outbound channel)
  kData = 3,     // node -> node object bytes
  kTool = 4,     // a tool (quanta status, a test) -> control service: read-only queries
  kLane = 5,     // caller's node -> an actor's worker, handed over by the actor's node (actor_lanes.h)
};
const char* ChannelName(Channel c);

class Handshake {
 public:
  enum class Role { kClient, kServer };
  enum class Progress { kWantRead, kWantWrite, kDone };

  // `channel`: for a client, the channel it asks for; ignored for a server (it learns it).
  Handshake(Role role, Channel channel, const ClusterToken* token, uint16_t min_version, uint16_t max_version);

  // Advances as far as the fd allows. An error means the connection must be closed; its
  // message says why (wrong token, version mismatch, malformed handshake, peer closed).
  Result<Progress> Step(int fd);
  Channel channel() const { return channel_; }
  uint16_t version() const { return version_; }

  // A whole client handshake on a blocking fd, within `timeout`.
  static Status Blocking(int fd, Channel channel, const ClusterToken& token, std::chrono::milliseconds timeout);

  static constexpr size_t kClientHelloSize = 44;
  static constexpr size_t kChallengeSize = 76;
  static constexpr size_t kProofSize = 32;
  static constexpr size_t kWelcomeSize = 4;

 private:
  enum class Stage { kSendHello, kReadHello, kSendChallenge, kReadChallenge, kSendProof, kReadProof,
                     kSendWelcome, kReadWelcome, kDone, kFailed };
  Result<Progress> Transfer(int fd, bool sending, size_t size);
  Status OnReceived();
  std::string Mac(const char* label, const std::string& first, const std::string& second) const;

  Role role_;
  Channel channel_;
  const ClusterToken* token_;
  uint16_t min_version_, max_version_;
  uint16_t version_ = 0;
  Stage stage_;
  std::string nonce_c_, nonce_s_;
  std::string buf_;   // the message being sent or received
  size_t done_ = 0;   // bytes of buf_ sent or received
  Status failure_;    // kept to report after telling the peer (a refusal is still sent)
};

// Runs handshakes on an event loop and hands over each finished connection's fd.
// Ownership: owns the fds while they handshake; passes them to the callback on success and
// closes them on failure or after `timeout`. Thread-safety: loop thread only.
class HandshakeDriver {
 public:
  using Done = std::function<void(Result<int> fd, Channel channel)>;
  HandshakeDriver(EventLoop* loop, const ClusterToken* token, std::chrono::milliseconds timeout,
                  size_t max_pending);
  ~HandshakeDriver();

  // Server side for an accepted fd; `peer` names it in logs.
  void Accept(int fd, std::string peer, Done done);
  // Client side on a socket that is connecting (non-blocking connect in progress).
  void Connect(int fd, std::string peer, Channel channel, Done done);
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    std::unique_ptr<Handshake> hs;
    std::string peer;
    Done done;
    bool connecting = false;
    uint64_t serial = 0;  // names this handshake for its timeout (fds and addresses are reused)
  };
  void Start(int fd, Pending p);
  void OnEvent(int fd);
  void Finish(int fd, Status failure);

  EventLoop* loop_;
  const ClusterToken* token_;
  std::chrono::milliseconds timeout_;
  size_t max_pending_;
  std::unordered_map<int, Pending> pending_;
  uint64_t next_serial_ = 1;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace quanta::net
