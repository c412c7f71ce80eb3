#include "net/handshake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"

namespace quanta::net {

namespace {

constexpr char kMagic[4] = {'Q', 'N', 'T', 'A'};
constexpr uint8_t kWelcomeOk = 1;
constexpr uint8_t kWelcomeWrongToken = 2;
constexpr size_t kNonceSize = 32;

void PutU16(std::string* out, uint16_t v) { out->append(reinterpret_cast<const char*>(&v), 2); }
uint16_t GetU16(const std::string& s, size_t at) {
  uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}

}  // namespace

const char* ChannelName(Channel c) {
  switch (c) {
    case Channel::kControl: return "control";
    case Channel::kPeer: return "peer";
    case Channel::kData: return "data";
    case Channel::kTool: return "tool";
    case Channel::kLane: return "lane";
  }
  return "unknown";
}

Handshake::Handshake(Role role, Channel channel, const ClusterToken* token, uint16_t min_version,
                     uint16_t max_version)
    : role_(role),
      channel_(channel),
      token_(token),
      min_version_(min_version),
      max_version_(max_version),
      stage_(role == Role::kClient ? Stage::kSendHello : Stage::kReadHello) {
  if (role_ == Role::kClient) {
    nonce_c_ = SecureRandom(kNonceSize);
    buf_.assign(kMagic, 4);
    PutU16(&buf_, min_version_);
    PutU16(&buf_, max_version_);
    buf_.push_back(static_cast<char>(channel_));
    buf_.append(3, '\0');
    buf_ += nonce_c_;
  } else {
    buf_.assign(kClientHelloSize, '\0');
  }
}

std::string Handshake::Mac(const char* label, const std::string& first, const std::string& second) const {
  std::string data(label);
  data.push_back(static_cast<char>(channel_));
  data += first;
  data += second;
  return HmacSha256(token_->secret, data);
}

Result<Handshake::Progress> Handshake::Transfer(int fd, bool sending, size_t size) {
  while (done_ < size) {
    ssize_t n = sending ? ::send(fd, buf_.data() + done_, size - done_, MSG_NOSIGNAL)
                        : ::recv(fd, buf_.data() + done_, size - done_, 0);
    if (n > 0) {
      done_ += static_cast<size_t>(n);
      continue;
    }
    if (n == 0 && !sending) return Status::IOError("the peer closed the connection during the handshake");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return sending ? Progress::kWantWrite : Progress::kWantRead;
    return Status::FromErrno(sending ? "send (handshake)" : "recv (handshake)");
  }
  return Progress::kDone;
}

Result<Handshake::Progress> Handshake::Step(int fd) {
  while (true) {
    bool sending = stage_ == Stage::kSendHello || stage_ == Stage::kSendChallenge || stage_ == Stage::kSendProof ||
                   stage_ == Stage::kSendWelcome;
    if (stage_ == Stage::kDone) return Progress::kDone;
    if (stage_ == Stage::kFailed) return failure_;
    auto p = Transfer(fd, sending, buf_.size());
    if (!p.ok()) {
      stage_ = Stage::kFailed;
      failure_ = p.status();
      return failure_;
    }
    if (p.value() != Progress::kDone) return p.value();
    done_ = 0;
    Status st = OnReceived();
    if (!st.ok()) {
      if (stage_ == Stage::kSendChallenge || stage_ == Stage::kSendWelcome) {
        failure_ = st;  // tell the peer why first, then fail
        continue;
      }
      stage_ = Stage::kFailed;
      failure_ = st;
      return st;
    }
  }
}

// Called when the current message has been fully sent or received; prepares the next stage.
Status Handshake::OnReceived() {
  switch (stage_) {
    case Stage::kSendHello:
      stage_ = Stage::kReadChallenge;
      buf_.assign(kChallengeSize, '\0');
      return Status::Ok();
    case Stage::kReadHello: {
      if (std::memcmp(buf_.data(), kMagic, 4) != 0) {
        stage_ = Stage::kFailed;
        return Status::ProtocolError("not a Quanta handshake (bad magic bytes)");
      }
      uint16_t peer_min = GetU16(buf_, 4), peer_max = GetU16(buf_, 6);
      auto ch = static_cast<uint8_t>(buf_[8]);
      if (ch < 1 || ch > 5) {
        stage_ = Stage::kFailed;
        return Status::ProtocolError("handshake names an unknown channel " + std::to_string(ch));
      }
      channel_ = static_cast<Channel>(ch);
      nonce_c_ = buf_.substr(12, kNonceSize);
      uint16_t lo = std::max(min_version_, peer_min), hi = std::min(max_version_, peer_max);
      version_ = lo <= hi ? hi : 0;
      nonce_s_ = SecureRandom(kNonceSize);
      buf_.assign(kMagic, 4);
      PutU16(&buf_, version_);
      PutU16(&buf_, min_version_);
      PutU16(&buf_, max_version_);
      PutU16(&buf_, 0);
      buf_ += nonce_s_;
      buf_ += version_ ? Mac("quanta server", nonce_c_, nonce_s_) : std::string(32, '\0');
      stage_ = Stage::kSendChallenge;
      if (version_ == 0) {
        return Status::ProtocolError("protocol version mismatch: the peer speaks " + std::to_string(peer_min) + "-" +
                                     std::to_string(peer_max) + ", this Quanta speaks " +
                                     std::to_string(min_version_) + "-" + std::to_string(max_version_));
      }
      return Status::Ok();
    }
    case Stage::kSendChallenge:
      if (!failure_.ok()) {  // the refusal (version mismatch) is sent: now fail
        stage_ = Stage::kFailed;
        return failure_;
      }
      stage_ = Stage::kReadProof;
      buf_.assign(kProofSize, '\0');
      return Status::Ok();
    case Stage::kReadChallenge: {
      if (std::memcmp(buf_.data(), kMagic, 4) != 0) {
        stage_ = Stage::kFailed;
        return Status::ProtocolError("the server did not answer with a Quanta handshake (is this the right port?)");
      }
      version_ = GetU16(buf_, 4);
      // 0 is the server's refusal; a version outside our own range is one we cannot speak
      // (a server of another release must not make us talk a protocol we do not know).
      if (version_ == 0 || version_ < min_version_ || version_ > max_version_) {
        stage_ = Stage::kFailed;
        return Status::ProtocolError("protocol version mismatch: the server runs Quanta protocol " +
                                     std::to_string(GetU16(buf_, 6)) + "-" + std::to_string(GetU16(buf_, 8)) +
                                     ", this process runs " + std::to_string(min_version_) + "-" +
                                     std::to_string(max_version_) + "; run the same Quanta version everywhere");
      }
      nonce_s_ = buf_.substr(12, kNonceSize);
      if (!SecureEqual(buf_.substr(44, 32), Mac("quanta server", nonce_c_, nonce_s_))) {
        stage_ = Stage::kFailed;
        return Status::InvalidArgument("the server does not hold our cluster token (wrong token, or not our cluster); "
                                       "set " + ClusterToken::Sources());
      }
      buf_ = Mac("quanta client", nonce_s_, nonce_c_);
      stage_ = Stage::kSendProof;
      return Status::Ok();
    }
    case Stage::kSendProof:
      stage_ = Stage::kReadWelcome;
      buf_.assign(kWelcomeSize, '\0');
      return Status::Ok();
    case Stage::kReadProof: {
      bool ok = SecureEqual(buf_, Mac("quanta client", nonce_s_, nonce_c_));
      buf_.assign(kWelcomeSize, '\0');
      buf_[0] = static_cast<char>(ok ? kWelcomeOk : kWelcomeWrongToken);
      stage_ = Stage::kSendWelcome;
      if (!ok) return Status::InvalidArgument("the peer does not hold the cluster token (wrong token)");
      return Status::Ok();
    }
    case Stage::kSendWelcome:
      if (!failure_.ok()) {
        stage_ = Stage::kFailed;
        return failure_;
      }
      stage_ = Stage::kDone;
      return Status::Ok();
    case Stage::kReadWelcome:
      if (static_cast<uint8_t>(buf_[0]) != kWelcomeOk) {
        stage_ = Stage::kFailed;
        return Status::InvalidArgument("the server refused our cluster token (wrong token); set " +
                                       ClusterToken::Sources());
      }
      stage_ = Stage::kDone;
      return Status::Ok();
    case Stage::kDone:
    case Stage::kFailed:
      return Status::Ok();
  }
  return Status::Ok();
}

Status Handshake::Blocking(int fd, Channel channel, const ClusterToken& token, std::chrono::milliseconds timeout) {
  Handshake hs(Role::kClient, channel, &token, protocol_min_version(), protocol_max_version());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto p = hs.Step(fd);
    if (!p.ok()) return p.status();
    if (p.value() == Progress::kDone) return Status::Ok();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::TimedOut("the handshake did not complete within " + std::to_string(timeout.count()) + " ms");
    pollfd pfd{fd, static_cast<short>(p.value() == Progress::kWantRead ? POLLIN : POLLOUT), 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) return Status::FromErrno("poll");
  }
}

// ------------------------------------------------------------------------- HandshakeDriver

HandshakeDriver::HandshakeDriver(EventLoop* loop, const ClusterToken* token, std::chrono::milliseconds timeout,
                                 size_t max_pending)
    : loop_(loop), token_(token), timeout_(timeout), max_pending_(max_pending) {}

HandshakeDriver::~HandshakeDriver() {
  for (auto& [fd, p] : pending_) {
    loop_->Remove(fd);
    ::close(fd);
  }
}

void HandshakeDriver::Accept(int fd, std::string peer, Done done) {
  if (pending_.size() >= max_pending_) {
    QLOG(kWarning) << "refusing a connection from " << peer << ": " << pending_.size()
                   << " connections are already authenticating";
    ::close(fd);
    return;
  }
  Pending p;
  p.hs = std::make_unique<Handshake>(Handshake::Role::kServer, Channel::kControl, token_, protocol_min_version(),
                                     protocol_max_version());
  p.peer = std::move(peer);
  p.done = std::move(done);
  Start(fd, std::move(p));
}

void HandshakeDriver::Connect(int fd, std::string peer, Channel channel, Done done) {
  Pending p;
  p.hs = std::make_unique<Handshake>(Handshake::Role::kClient, channel, token_, protocol_min_version(),
                                     protocol_max_version());
  p.peer = std::move(peer);
  p.done = std::move(done);
  p.connecting = true;
  Start(fd, std::move(p));
}

void HandshakeDriver::Start(int fd, Pending p) {
  bool connecting = p.connecting;
  const uint64_t serial = next_serial_++;
  p.serial = serial;
  pending_[fd] = std::move(p);
  Status st = loop_->Add(fd, connecting ? EPOLLOUT : EPOLLIN, [this, fd](uint32_t) { OnEvent(fd); });
  if (!st.ok()) {
    Finish(fd, st);
    return;
  }
  std::weak_ptr<int> alive = alive_;
  // The timer names its handshake by serial: by the time it fires, this one may have finished
  // and a new connection may have the same fd (and its Handshake the same address).
  loop_->RunAfter(timeout_, [this, alive, fd, serial] {
    if (alive.expired()) return;
    auto it = pending_.find(fd);
    if (it != pending_.end() && it->second.serial == serial) {
      Finish(fd, Status::TimedOut("the handshake did not complete within " + std::to_string(timeout_.count()) + " ms"));
    }
  });
  if (!connecting) OnEvent(fd);
}

void HandshakeDriver::OnEvent(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  if (p.connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == EINPROGRESS) return;
    if (err != 0) {
      errno = err;
      Finish(fd, Status::FromErrno("connect to " + p.peer));
      return;
    }
    p.connecting = false;
  }
  auto progress = p.hs->Step(fd);
  if (!progress.ok()) {
    Finish(fd, progress.status());
    return;
  }
  if (progress.value() == Handshake::Progress::kDone) {
    Finish(fd, Status::Ok());
    return;
  }
  Status st = loop_->Modify(fd, progress.value() == Handshake::Progress::kWantRead ? EPOLLIN : EPOLLOUT);
  if (!st.ok()) Finish(fd, st);
}

void HandshakeDriver::Finish(int fd, Status failure) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  loop_->Remove(fd);
  if (!failure.ok()) {
    QLOG(kWarning) << "handshake with " << p.peer << " failed: " << failure.message();
    ::close(fd);
    p.done(failure, p.hs->channel());
    return;
  }
  p.done(fd, p.hs->channel());
}

}  // namespace quanta::net
