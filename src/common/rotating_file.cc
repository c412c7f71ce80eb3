#include "common/rotating_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace quanta {

namespace {
// A whole number in [lo, hi] from the environment; a value that is not one is reported (once per
// process, on stderr, which the daemons' launcher keeps) and the default used.
bool EnvNumber(const char* name, long long lo, long long hi, long long* out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return false;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi) {
    static bool warned = false;
    if (!warned) {
      std::fprintf(stderr, "quanta: ignoring %s='%s': it must be a whole number from %lld to %lld\n", name, v, lo, hi);
      warned = true;
    }
    return false;
  }
  *out = n;
  return true;
}
}  // namespace

RotatingFile::Limits RotatingFile::Limits::FromEnvironment() {
  Limits l;
  long long n = 0;
  if (EnvNumber("QUANTA_LOG_MAX_BYTES", 1, 1ll << 50, &n)) l.max_bytes = static_cast<uint64_t>(n);
  if (EnvNumber("QUANTA_LOG_BACKUPS", 0, 1000, &n)) l.backups = static_cast<int>(n);
  return l;
}

RotatingFile::~RotatingFile() { Close(); }

int RotatingFile::OpenFile() {
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    fchmod(fd, 0600);
    struct stat st {};
    size_ = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  return fd;
}

bool RotatingFile::Open(const std::string& path, Limits limits) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  limits_ = limits;
  fd_ = OpenFile();
  return fd_ >= 0;
}

void RotatingFile::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RotatingFile::Write(std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  if (size_ > 0 && size_ + data.size() > limits_.max_bytes) RotateLocked();
  if (fd_ < 0) return;
  ssize_t n = ::write(fd_, data.data(), data.size());
  if (n > 0) size_ += static_cast<uint64_t>(n);
}

void RotatingFile::RotateLocked() {
  ::close(fd_);
  fd_ = -1;
  if (limits_.backups == 0) {
    ::unlink(path_.c_str());
  } else {
    std::remove((path_ + "." + std::to_string(limits_.backups)).c_str());
    for (int i = limits_.backups - 1; i >= 1; --i) {
      std::rename((path_ + "." + std::to_string(i)).c_str(), (path_ + "." + std::to_string(i + 1)).c_str());
    }
    std::rename(path_.c_str(), (path_ + ".1").c_str());
  }
  fd_ = OpenFile();
}

}  // namespace quanta
