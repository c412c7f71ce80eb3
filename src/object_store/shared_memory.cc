#include "object_store/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace quanta {

Result<std::unique_ptr<SharedMemory>> SharedMemory::Create(const std::string& name, uint64_t size) {
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return Status::FromErrno("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    Status st = Status::FromErrno("ftruncate shared memory to " + std::to_string(size) + " bytes");
    ::close(fd);
    return st;
  }
  void* p = size ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : nullptr;
  if (p == MAP_FAILED) {
    Status st = Status::FromErrno("mmap shared memory");
    ::close(fd);
    return st;
  }
  return std::unique_ptr<SharedMemory>(new SharedMemory(fd, static_cast<uint8_t*>(p), size));
}

Result<std::unique_ptr<SharedMemory>> SharedMemory::Open(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open shared memory " + path);
  void* p = size ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : nullptr;
  if (p == MAP_FAILED) {
    Status st = Status::FromErrno("mmap shared memory " + path);
    ::close(fd);
    return st;
  }
  return std::unique_ptr<SharedMemory>(new SharedMemory(fd, static_cast<uint8_t*>(p), size));
}

SharedMemory::~SharedMemory() {
  if (data_ != nullptr) munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
}

std::string SharedMemory::path() const {
  return "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string(fd_);
}

}  // namespace quanta
