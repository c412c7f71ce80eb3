// Levelled logging for the engine's processes.
//
// Each process logs to one file in the session's log directory (set once at start-up with
// InitLogging), mode 0600 and rotated by size (common/rotating_file.h); nothing goes to the
// user's terminal unless the file cannot be opened or QUANTA_LOG_TO_STDERR=1 is set. Usage:  QLOG(kInfo) << "worker " << id << " started";
//
// Thread-safety: QLOG may be used from any thread; each line is written with one write(2).
#pragma once

#include <sstream>
#include <string>

namespace quanta {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Opens `path` for appending and sets the minimum level (QUANTA_LOG_LEVEL=debug|info|warning|error
// in the environment overrides `min_level`). `component` prefixes every line.
void InitLogging(const std::string& component, const std::string& path, LogLevel min_level);
bool LogEnabled(LogLevel level);

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Lets QLOG be an expression: `cond ? (void)0 : LogVoidify() & LogLine(...) << ...`.
struct LogVoidify {
  void operator&(LogLine&) {}
};

}  // namespace quanta

#define QLOG(level)                                          \
  !::quanta::LogEnabled(::quanta::LogLevel::level)           \
      ? (void)0                                              \
      : ::quanta::LogVoidify() &                             \
            ::quanta::LogLine(::quanta::LogLevel::level, __FILE__, __LINE__)
