// Status and Result<T>: how every fallible operation in the C++ engine reports failure.
//
// A Status is a code plus a human-readable message. Codes are deliberately few and generic;
// subsystem detail belongs in the message. The Python bindings turn a non-OK Status into a
// Python exception in exactly one place (src/bindings/errors.cc).
//
// Thread-safety: values; copy freely.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace quanta {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,   // the caller passed something malformed
  kNotFound,          // a named thing does not exist
  kIOError,           // a socket, file or process operation failed
  kProtocolError,     // a peer sent a malformed or unexpected message
  kTimedOut,          // a deadline passed
  kCancelled,         // the operation was abandoned (e.g. shutdown)
  kResourceExhausted, // out of memory, store space, file descriptors...
  kInternal,          // a bug: an invariant did not hold
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status ProtocolError(std::string m) { return {StatusCode::kProtocolError, std::move(m)}; }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  // IOError carrying strerror(errno) for the failed call `what`.
  static Status FromErrno(const std::string& what);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define QUANTA_RETURN_IF_ERROR(expr)        \
  do {                                      \
    ::quanta::Status _st = (expr);          \
    if (!_st.ok()) return _st;              \
  } while (0)

}  // namespace quanta
