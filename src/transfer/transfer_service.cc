#include "transfer/transfer_service.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/crc32c.h"
#include "common/logging.h"
#include "net/handshake.h"
#include "net/socket.h"

namespace quanta {

namespace {

constexpr size_t kHeaderSize = 24;
constexpr int kConnectTimeoutMs = 5000;

Status WriteFully(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("send (data channel)");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads exactly `size` bytes; IOError on EOF or error.
Status ReadFully(int fd, void* data, size_t size) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::recv(fd, p, size, 0);
    if (n == 0) return Status::IOError("the data channel closed");
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("recv (data channel)");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads exactly `size` bytes into `data` and returns their CRC-32C in *crc, checksumming each
// piece as it arrives, while it is still in the cache (a second pass over a 4 MiB chunk would
// read it back from memory).
Status ReadFullyWithCrc(int fd, uint8_t* data, size_t size, uint32_t* crc) {
  uint32_t c = 0;
  while (size > 0) {
    ssize_t n = ::recv(fd, data, size, 0);
    if (n == 0) return Status::IOError("the data channel closed");
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("recv (data channel)");
    }
    c = Crc32c(data, static_cast<size_t>(n), c);
    data += n;
    size -= static_cast<size_t>(n);
  }
  *crc = c;
  return Status::Ok();
}

}  // namespace

TransferService::TransferService(net::EventLoop* loop, const net::ClusterToken* token, uint32_t self_index,
                                 Callbacks callbacks)
    : loop_(loop), token_(token), self_index_(self_index), callbacks_(std::move(callbacks)) {}

TransferService::~TransferService() {
  for (auto& [to, d] : destinations_) {
    {
      std::lock_guard<std::mutex> lock(d->mu);
      d->stopping = true;
      if (d->fd >= 0) ::shutdown(d->fd, SHUT_RDWR);
    }
    d->cv.notify_all();
  }
  for (auto& [to, d] : destinations_) {
    if (d->thread.joinable()) d->thread.join();
    if (d->fd >= 0) ::close(d->fd);
  }
  std::vector<std::pair<int, std::thread>> receivers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    receivers.swap(receivers_);
  }
  for (auto& [fd, t] : receivers) {
    ::shutdown(fd, SHUT_RDWR);
    if (t.joinable()) t.join();
    ::close(fd);
  }
}

// ------------------------------------------------------------------------------ sending

void TransferService::Send(uint32_t to, const std::string& host, uint16_t port, uint64_t transfer_id,
                           const uint8_t* src, uint64_t size, uint64_t send_id) {
  auto& slot = destinations_[to];
  if (!slot) {
    slot = std::make_unique<Destination>();
    slot->host = host;
    slot->port = port;
    Destination* d = slot.get();
    d->thread = std::thread([this, to, d] { SenderLoop(to, d); });
  }
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->jobs.push_back(Job{transfer_id, send_id, src, size});
  }
  slot->cv.notify_one();
}

void TransferService::SenderLoop(uint32_t to, Destination* d) {
  std::unique_lock<std::mutex> lock(d->mu);
  while (true) {
    d->cv.wait(lock, [&] { return d->stopping || !d->jobs.empty(); });
    if (d->stopping) break;
    if (d->fd < 0) {
      lock.unlock();
      Status st;
      int fd = -1;
      if (token_ == nullptr) {
        st = Status::InvalidArgument("no cluster token for data channels");
      } else {
        auto conn = net::ConnectTcp(d->host, d->port, kConnectTimeoutMs);
        st = conn.status();
        if (conn.ok()) {
          fd = conn.value();
          net::TuneTcp(fd);
          st = net::Handshake::Blocking(fd, net::Channel::kData, *token_, std::chrono::milliseconds(kConnectTimeoutMs));
          uint32_t self = self_index_;
          if (st.ok()) st = WriteFully(fd, &self, sizeof self);
          if (!st.ok()) ::close(fd);
        }
      }
      lock.lock();
      if (!st.ok()) {
        // Every queued job to this node fails; the receivers will retry elsewhere.
        QLOG(kWarning) << "cannot open a data channel to node " << to << ": " << st.message();
        for (auto& job : d->jobs) {
          uint64_t id = job.send_id;
          loop_->Post([this, id, st] { callbacks_.on_sent(id, st); });
        }
        d->jobs.clear();
        continue;
      }
      d->fd = fd;
    }
    // One chunk of the job at the front, then it goes to the back: objects interleave.
    Job job = d->jobs.front();
    d->jobs.pop_front();
    int fd = d->fd;
    lock.unlock();
    Status st = SendChunk(fd, job);
    lock.lock();
    if (!st.ok()) {
      QLOG(kWarning) << "data channel to node " << to << " broke: " << st.message();
      ::close(d->fd);
      d->fd = -1;
      uint64_t id = job.send_id;
      loop_->Post([this, id, st] { callbacks_.on_sent(id, st); });
      continue;
    }
    if (job.sent < job.size) {
      d->jobs.push_back(job);
    } else {
      uint64_t id = job.send_id;
      loop_->Post([this, id] { callbacks_.on_sent(id, Status::Ok()); });
    }
  }
}

Status TransferService::SendChunk(int fd, Job& job) {
  uint64_t len = std::min<uint64_t>(kChunkSize, job.size - job.sent);
  const uint8_t* p = job.src + job.sent;
  uint8_t header[kHeaderSize];
  uint32_t len32 = static_cast<uint32_t>(len);
  uint32_t crc = Crc32c(p, len);
  std::memcpy(header, &job.transfer_id, 8);
  std::memcpy(header + 8, &job.sent, 8);
  std::memcpy(header + 16, &len32, 4);
  std::memcpy(header + 20, &crc, 4);
  iovec iov[2] = {{header, kHeaderSize}, {const_cast<uint8_t*>(p), len}};
  size_t total = kHeaderSize + len, done = 0;
  while (done < total) {
    msghdr msg{};
    iovec rest[2];
    int n_iov = 0;
    size_t skip = done;
    for (auto& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      rest[n_iov].iov_base = static_cast<uint8_t*>(v.iov_base) + skip;
      rest[n_iov].iov_len = v.iov_len - skip;
      skip = 0;
      ++n_iov;
    }
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<size_t>(n_iov);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("sendmsg (data channel)");
    }
    done += static_cast<size_t>(n);
  }
  job.sent += len;
  stats_.bytes_sent += len;
  stats_.chunks_sent += 1;
  return Status::Ok();
}

// ------------------------------------------------------------------------------ receiving

void TransferService::Expect(uint64_t transfer_id, uint8_t* dest, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  Incoming& in = incoming_[transfer_id];
  in.dest = dest;
  in.size = size;
  if (size == 0) FinishIncomingLocked(transfer_id, Status::Ok());
}

void TransferService::Abandon(uint64_t transfer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = incoming_.find(transfer_id);
  if (it == incoming_.end()) return;
  it->second.abandoned = true;
  if (!it->second.writing) FinishIncomingLocked(transfer_id, Status::Cancelled("the transfer was abandoned"));
}

void TransferService::FinishIncomingLocked(uint64_t transfer_id, Status result) {
  incoming_.erase(transfer_id);
  if (result.ok()) {
    stats_.transfers_received += 1;
  } else {
    stats_.transfers_failed += 1;
  }
  loop_->Post([this, transfer_id, result] { callbacks_.on_received(transfer_id, result); });
}

void TransferService::AdoptInbound(int fd, const std::string& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    ::close(fd);
    return;
  }
  // Channels that ended: join their threads and close their fds.
  for (auto it = receivers_.begin(); it != receivers_.end();) {
    if (finished_.count(it->first)) {
      it->second.join();
      ::close(it->first);
      finished_.erase(it->first);
      it = receivers_.erase(it);
    } else {
      ++it;
    }
  }
  // The channel is blocking from here on: a receiver thread owns it.
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  receivers_.emplace_back(fd, std::thread([this, fd, peer] { ReceiverLoop(fd, peer); }));
}

void TransferService::ReceiverLoop(int fd, std::string peer) {
  uint32_t from = 0;
  Status st = ReadFully(fd, &from, sizeof from);
  std::vector<uint64_t> touched;  // transfers this channel has delivered bytes to
  std::vector<uint8_t> scratch;
  while (st.ok()) {
    uint8_t header[kHeaderSize];
    st = ReadFully(fd, header, kHeaderSize);
    if (!st.ok()) break;
    uint64_t id, offset;
    uint32_t len, crc;
    std::memcpy(&id, header, 8);
    std::memcpy(&offset, header + 8, 8);
    std::memcpy(&len, header + 16, 4);
    std::memcpy(&crc, header + 20, 4);
    if (len > kMaxChunk) {
      st = Status::ProtocolError("a chunk of " + std::to_string(len) + " bytes is over the limit");
      break;
    }
    uint8_t* dest = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = incoming_.find(id);
      if (it != incoming_.end() && !it->second.abandoned) {
        if (offset > it->second.size || len > it->second.size - offset) {
          FinishIncomingLocked(id, Status::ProtocolError("a chunk beyond the object's end"));
        } else if (offset != it->second.received) {
          // A sender sends each transfer's chunks in order: anything else (a repeat, a gap)
          // would let the byte count reach the size with part of the object never written.
          FinishIncomingLocked(id, Status::ProtocolError("a chunk at offset " + std::to_string(offset) +
                                                         " where " + std::to_string(it->second.received) +
                                                         " was due (repeated or out of order)"));
        } else {
          it->second.writing = true;
          dest = it->second.dest + offset;
          // From its first byte: a channel that ends inside this chunk must fail the transfer.
          if (offset == 0) touched.push_back(id);
        }
      }
    }
    if (dest == nullptr) {  // not (or no longer) wanted: read and drop
      scratch.resize(std::min<size_t>(len, 1u << 20));
      for (uint32_t left = len; st.ok() && left > 0;) {
        uint32_t n = std::min<uint32_t>(left, static_cast<uint32_t>(scratch.size()));
        st = ReadFully(fd, scratch.data(), n);
        left -= n;
      }
      continue;
    }
    uint32_t got_crc = 0;
    st = ReadFullyWithCrc(fd, dest, len, &got_crc);
    bool good = st.ok() && got_crc == crc;
    stats_.bytes_received += len;
    stats_.chunks_received += 1;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = incoming_.find(id);
    if (it == incoming_.end()) continue;
    Incoming& in = it->second;
    in.writing = false;
    if (in.abandoned) {
      FinishIncomingLocked(id, Status::Cancelled("the transfer was abandoned"));
      continue;
    }
    if (!st.ok()) break;
    if (!good) {
      stats_.checksum_failures += 1;
      QLOG(kWarning) << "a chunk of transfer " << id << " from " << peer << " failed its checksum";
      FinishIncomingLocked(id, Status::IOError("a chunk failed its checksum (corrupted in transit)"));
      continue;
    }
    in.received += len;
    if (in.received == in.size) FinishIncomingLocked(id, Status::Ok());
  }
  std::lock_guard<std::mutex> lock(mu_);
  finished_.insert(fd);
  if (stopping_) return;
  // The channel ended: what it was delivering will not complete.
  for (uint64_t id : touched) {
    auto it = incoming_.find(id);
    if (it != incoming_.end()) {
      it->second.writing = false;
      FinishIncomingLocked(id, Status::IOError("the data channel from " + peer + " ended mid-transfer: " + st.message()));
    }
  }
}

}  // namespace quanta
