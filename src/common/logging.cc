#include "common/logging.h"

#include "common/rotating_file.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace quanta {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kWarning)};
std::atomic<bool> g_to_file{false};
RotatingFile g_file;  // the process's log file, rotated by size
std::string g_component = "quanta";

LogLevel ParseLevel(const char* s, LogLevel fallback) {
  if (s == nullptr) return fallback;
  if (!strcasecmp(s, "debug")) return LogLevel::kDebug;
  if (!strcasecmp(s, "info")) return LogLevel::kInfo;
  if (!strcasecmp(s, "warning")) return LogLevel::kWarning;
  if (!strcasecmp(s, "error")) return LogLevel::kError;
  return fallback;
}

}  // namespace

void InitLogging(const std::string& component, const std::string& path, LogLevel min_level) {
  g_component = component;
  g_min_level = static_cast<int>(ParseLevel(std::getenv("QUANTA_LOG_LEVEL"), min_level));
  const char* to_stderr = std::getenv("QUANTA_LOG_TO_STDERR");
  if (to_stderr != nullptr && std::strcmp(to_stderr, "1") == 0) return;
  if (path.empty()) return;
  g_to_file = g_file.Open(path, RotatingFile::Limits::FromEnvironment());
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_min_level.load(); }

LogLine::LogLine(LogLevel level, const char* file, int line) : level_(level) {
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm local;
  localtime_r(&tv.tv_sec, &local);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%m-%d %H:%M:%S", &local);
  const char* base = std::strrchr(file, '/');
  stream_ << kLetters[static_cast<int>(level)] << ' ' << stamp << '.' << (tv.tv_usec / 1000)
          << ' ' << g_component << '[' << getpid() << "] " << (base ? base + 1 : file) << ':'
          << line << "] ";
}

LogLine::~LogLine() {
  stream_ << '\n';
  std::string s = stream_.str();
  if (g_to_file.load()) {
    g_file.Write(s);
  } else {
    ssize_t ignored = ::write(2, s.data(), s.size());
    (void)ignored;
  }
  (void)level_;
}

}  // namespace quanta
