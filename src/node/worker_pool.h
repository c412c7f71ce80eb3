// Starts and reaps the node's Python worker processes and collects their output.
//
// Each worker is an OS process (`python -m quanta._private.worker_main`) started with a
// token it presents in its Hello; the NodeServer matches the connection to the process by
// that token. The pool captures each worker's stdout/stderr through pipes, appends them to
// the worker's log file in the session directory and hands complete lines to the output
// handler (which forwards them to the driver). Workers get PR_SET_PDEATHSIG so they die with
// the node daemon.
//
// Ownership: owned by the NodeServer; owns the pipes. Thread-safety: loop thread only.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "net/event_loop.h"

namespace quanta {

class WorkerPool {
 public:
  struct Options {
    std::string python;          // interpreter to run
    std::string node_socket;     // passed to the worker
    std::string log_dir;         // worker-<token>.out / .err
    std::vector<std::string> extra_env;  // KEY=VALUE added to the daemon's environment
  };
  using OutputHandler = std::function<void(uint64_t token, bool is_stderr, std::string text)>;
  using ExitHandler = std::function<void(uint64_t token, int wait_status)>;

  WorkerPool(net::EventLoop* loop, Options options, OutputHandler on_output, ExitHandler on_exit);
  ~WorkerPool();

  Status Init();  // installs the SIGCHLD handler; call once
  Result<uint64_t> Start();
  void Kill(uint64_t token, int signal);
  void KillAll();
  pid_t PidOf(uint64_t token) const;
  size_t num_processes() const { return workers_.size(); }

 private:
  struct Pipe {
    int fd = -1;
    int log_fd = -1;
    std::string partial;  // bytes after the last newline
  };
  struct Process {
    pid_t pid = 0;
    Pipe out, err;
  };
  void OnPipeReadable(uint64_t token, bool is_stderr);
  void ClosePipe(Pipe& p);
  void Reap();

  net::EventLoop* loop_;
  Options options_;
  OutputHandler on_output_;
  ExitHandler on_exit_;
  int signal_fd_ = -1;
  uint64_t next_token_ = 1;
  std::unordered_map<uint64_t, Process> workers_;
};

}  // namespace quanta
