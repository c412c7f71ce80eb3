// An append-only log file that rotates by size: once it exceeds `max_bytes`, `path` becomes
// `path.1` (older ones shift to `.2`, ... up to `backups`; the oldest is deleted) and a fresh
// `path` is started. Files are created with mode 0600 whatever the umask (task output and logs
// may hold secrets) and never through a symlink.
//
// Defaults: 64 MiB x 5 backups, overridable with QUANTA_LOG_MAX_BYTES / QUANTA_LOG_BACKUPS.
// Thread-safety: Write may be called from any thread (one mutex per file).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace quanta {

class RotatingFile {
 public:
  struct Limits {
    uint64_t max_bytes = 64ull << 20;
    int backups = 5;
    static Limits FromEnvironment();
  };

  RotatingFile() = default;
  ~RotatingFile();
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  // Opens `path` for appending; false if it cannot be opened.
  bool Open(const std::string& path, Limits limits);
  void Write(std::string_view data);
  void Close();
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  void RotateLocked();
  int OpenFile();

  std::mutex mu_;
  std::string path_;
  Limits limits_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace quanta
