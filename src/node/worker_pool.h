// Starts and reaps the node's Python worker processes and collects their output.
//
// Each worker is an OS process (`python -m quanta._private.worker_main`) started with a
// secret token in its environment (never on its command line, which every user can read); it
// presents the token in its Hello and the node matches the connection to the process by the
// token and the kernel-reported pid. The pool captures each worker's stdout/stderr through pipes, appends them to
// the worker's log file in the session directory and hands complete lines to the output
// handler (which forwards them to the driver). Workers get PR_SET_PDEATHSIG so they die with
// the node daemon.
//
// Each worker belongs to one runtime environment (Ray's runtime_env), named by a hash (empty:
// the node's own environment): the pool passes the hash and the environment's JSON to the
// process (QUANTA_RUNTIME_ENV_HASH / QUANTA_RUNTIME_ENV), which sets it up before running
// anything (quanta/_private/runtime_env_setup.py), and remembers it (EnvOf).
//
// Ownership: owned by the NodeServer; owns the pipes. Thread-safety: loop thread only.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/rotating_file.h"
#include "common/status.h"
#include "net/event_loop.h"

namespace quanta {

class WorkerPool {
 public:
  struct Options {
    std::string python;          // interpreter to run
    std::string node_socket;     // passed to the worker
    std::string log_dir;         // worker-<n>.out / .err (mode 0600, rotated by size)
    std::vector<std::string> extra_env;  // KEY=VALUE added to the daemon's environment
  };
  using OutputHandler = std::function<void(const std::string& token, bool is_stderr, std::string text)>;
  // `stderr_log`: the file holding what the process wrote to stderr.
  using ExitHandler = std::function<void(const std::string& token, int wait_status, const std::string& stderr_log)>;

  WorkerPool(net::EventLoop* loop, Options options, OutputHandler on_output, ExitHandler on_exit);
  ~WorkerPool();

  Status Init();  // installs the SIGCHLD handler; call once
  // Starts a worker for the runtime environment `env_hash` (empty: none) described by
  // `env_json`; returns the new worker's token.
  Result<std::string> Start(const std::string& env_hash = "", const std::string& env_json = "");
  void Kill(const std::string& token, int signal);
  void KillAll();
  pid_t PidOf(const std::string& token) const;
  const std::string& EnvOf(const std::string& token) const;  // its runtime-env hash
  std::string LogPathOf(const std::string& token, bool is_stderr) const;
  size_t num_processes() const { return workers_.size(); }

 private:
  struct Pipe {
    int fd = -1;
    std::unique_ptr<RotatingFile> log = std::make_unique<RotatingFile>();  // rotated by size
    std::string partial;  // bytes after the last newline
  };
  struct Process {
    pid_t pid = 0;
    uint64_t index = 0;  // names its log files
    std::string env_hash;  // the runtime environment it was started for
    Pipe out, err;
  };
  void OnPipeReadable(const std::string& token, bool is_stderr);
  void ClosePipe(Pipe& p);
  void Reap();

  net::EventLoop* loop_;
  Options options_;
  OutputHandler on_output_;
  ExitHandler on_exit_;
  int signal_fd_ = -1;
  uint64_t next_index_ = 1;
  std::unordered_map<std::string, Process> workers_;  // by token
};

}  // namespace quanta
