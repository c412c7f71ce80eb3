// A shared-memory region backed by a memfd: created by the node daemon, mapped by every local
// driver and worker.
//
// Clients open it through the node's /proc/<pid>/fd/<fd> path (given in the HelloReply), so no
// file is left behind in /dev/shm if the node is killed. The memory is sparse: pages are
// allocated on first touch.
//
// Ownership: the creating process owns the fd and the mapping; Unmap on destruction.
// Thread-safety: the mapping may be read and written from any thread; the object returned by
// Create/Open is not itself synchronised.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace quanta {

class SharedMemory {
 public:
  static Result<std::unique_ptr<SharedMemory>> Create(const std::string& name, uint64_t size);
  static Result<std::unique_ptr<SharedMemory>> Open(const std::string& path, uint64_t size);
  ~SharedMemory();
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  // Path other processes of the same user can open to map the same memory.
  std::string path() const;

 private:
  SharedMemory(int fd, uint8_t* data, uint64_t size) : fd_(fd), data_(data), size_(size) {}
  int fd_;
  uint8_t* data_;
  uint64_t size_;
};

}  // namespace quanta
