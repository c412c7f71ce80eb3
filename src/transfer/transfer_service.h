// Moves object bytes between the shared-memory stores of two nodes, off the event loop.
//
// Data channels are TCP connections opened to a peer's node port with the authenticated
// handshake (channel "data"), separate from the message channels so a large object never
// delays small messages. A node sends only on the data channels it opened (one per destination,
// served by one sender thread) and reads the ones peers opened (one receiver thread each).
//
// Wire format on a data channel, after the handshake: u32 sender node index, then chunks:
//   u64 transfer id | u64 offset | u32 length (<= 8 MiB) | u32 crc32c of the bytes | bytes
// A sender interleaves the chunks of every object queued for a destination (4 MiB each), so a
// big object does not hold up small ones; each object's chunks go in order (a repeated or
// out-of-order chunk fails its transfer). Bytes are sent from and received into the stores'
// mappings directly (one kernel copy each way, no heap copy). A chunk whose checksum is wrong,
// a transfer that stops short, or a channel that breaks fails the transfer; the caller (the
// PullManager) retries elsewhere. Nothing is visible to readers until the caller seals it.
//
// Ownership: owns its threads and data channels; never frees store memory (the caller does,
// after on_received or on_released). Callbacks run on the event-loop thread (posted).
// Thread-safety: public methods are called from the loop thread only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "net/auth.h"
#include "net/event_loop.h"

namespace quanta {

class TransferService {
 public:
  struct Callbacks {
    // Every byte of `transfer_id` arrived and checked out, or the transfer failed.
    std::function<void(uint64_t transfer_id, const Status& result)> on_received;
    // A send finished (or failed); the source may be unpinned.
    std::function<void(uint64_t send_id, const Status& result)> on_sent;
  };
  struct Stats {
    std::atomic<uint64_t> bytes_sent{0}, bytes_received{0}, chunks_sent{0}, chunks_received{0};
    std::atomic<uint64_t> transfers_received{0}, transfers_failed{0}, checksum_failures{0};
  };
  static constexpr uint64_t kChunkSize = 4u << 20;
  static constexpr uint32_t kMaxChunk = 8u << 20;

  TransferService(net::EventLoop* loop, const net::ClusterToken* token, uint32_t self_index, Callbacks callbacks);
  ~TransferService();
  TransferService(const TransferService&) = delete;
  TransferService& operator=(const TransferService&) = delete;

  void set_self_index(uint32_t index) { self_index_ = index; }

  // Receiving: the bytes of `transfer_id` go to [dest, dest + size).
  void Expect(uint64_t transfer_id, uint8_t* dest, uint64_t size);
  // The receiver no longer wants it (timed out, or shutting down). Its memory may still be
  // written until `on_received` reports it (with an error): free it only then.
  void Abandon(uint64_t transfer_id);
  // Sending: streams [src, src + size) to node `to` at host:port; on_sent(send_id) when done.
  void Send(uint32_t to, const std::string& host, uint16_t port, uint64_t transfer_id, const uint8_t* src,
            uint64_t size, uint64_t send_id);
  // A data channel a peer opened to us (authenticated): read it on a receiver thread.
  void AdoptInbound(int fd, const std::string& peer);

  const Stats& stats() const { return stats_; }

 private:
  struct Job {
    uint64_t transfer_id, send_id;
    const uint8_t* src;
    uint64_t size, sent = 0;
  };
  struct Destination {
    std::string host;
    uint16_t port = 0;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> jobs;
    bool stopping = false;
    int fd = -1;
    std::thread thread;
  };
  struct Incoming {
    uint8_t* dest = nullptr;
    uint64_t size = 0, received = 0;
    bool writing = false;    // a receiver thread is writing into dest right now
    bool abandoned = false;  // the loop gave up on it: report once nobody writes
  };

  void SenderLoop(uint32_t to, Destination* d);
  Status SendChunk(int fd, Job& job);
  void ReceiverLoop(int fd, std::string peer);
  // Ends an incoming transfer (under mu_); posts its result to the loop.
  void FinishIncomingLocked(uint64_t transfer_id, Status result);

  net::EventLoop* loop_;
  const net::ClusterToken* token_;
  std::atomic<uint32_t> self_index_;
  Callbacks callbacks_;
  Stats stats_;
  std::unordered_map<uint32_t, std::unique_ptr<Destination>> destinations_;  // loop thread only
  std::mutex mu_;  // guards incoming_, receivers_, stopping_
  std::unordered_map<uint64_t, Incoming> incoming_;
  std::vector<std::pair<int, std::thread>> receivers_;
  std::unordered_set<int> finished_;  // fds of receivers whose loop ended (joined lazily)
  bool stopping_ = false;
};

}  // namespace quanta
