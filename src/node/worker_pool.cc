#include "node/worker_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "common/random.h"

extern char** environ;

namespace {
constexpr size_t kMaxPartialLine = 64 * 1024;  // bytes kept of a line whose newline has not come
}  // namespace

namespace quanta {

WorkerPool::WorkerPool(net::EventLoop* loop, Options options, OutputHandler on_output,
                       ExitHandler on_exit)
    : loop_(loop),
      options_(std::move(options)),
      on_output_(std::move(on_output)),
      on_exit_(std::move(on_exit)) {}

WorkerPool::~WorkerPool() {
  KillAll();
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

Status WorkerPool::Init() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) return Status::FromErrno("sigprocmask");
  signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) return Status::FromErrno("signalfd");
  return loop_->Add(signal_fd_, EPOLLIN, [this](uint32_t) {
    signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof info) > 0) {
    }
    Reap();
  });
}

Result<std::string> WorkerPool::Start(const std::string& env_hash, const std::string& env_json) {
  std::string token = RandomHex(16);
  uint64_t index = next_index_++;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) < 0) return Status::FromErrno("pipe2");
  if (pipe2(err_pipe, O_CLOEXEC) < 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Status::FromErrno("pipe2");
  }
  std::vector<std::string> args = {options_.python, "-u", "-m", "quanta._private.worker_main",
                                   options_.node_socket};
  // The node's environment, with the extra variables replacing inherited ones of the same name.
  std::vector<std::string> env_strings;
  auto overridden = [&](const char* entry) {
    for (const auto& kv : options_.extra_env) {
      size_t eq = kv.find('=');
      if (eq != std::string::npos && std::strncmp(entry, kv.data(), eq + 1) == 0) return true;
    }
    return false;
  };
  auto secret = [](const char* entry) {  // the cluster token is for daemons, not user code
    return std::strncmp(entry, "QUANTA_AUTH_TOKEN=", 18) == 0 || std::strncmp(entry, "QUANTA_WORKER_TOKEN=", 20) == 0 ||
           std::strncmp(entry, "QUANTA_RUNTIME_ENV", 18) == 0;  // only the one it is started for
  };
  for (char** e = environ; *e; ++e) {
    if (!overridden(*e) && !secret(*e)) env_strings.emplace_back(*e);
  }
  for (const auto& kv : options_.extra_env) env_strings.push_back(kv);
  env_strings.push_back("QUANTA_WORKER_TOKEN=" + token);
  env_strings.push_back("QUANTA_WORKER_INDEX=" + std::to_string(index));
  if (!env_hash.empty()) {
    env_strings.push_back("QUANTA_RUNTIME_ENV_HASH=" + env_hash);
    env_strings.push_back("QUANTA_RUNTIME_ENV=" + env_json);
  }
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    setpgid(0, 0);  // keep the user's Ctrl-C from reaching workers directly
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Process& proc = workers_[token];
  proc.pid = pid;
  proc.index = index;
  proc.env_hash = env_hash;
  proc.out.fd = out_pipe[0];
  proc.err.fd = err_pipe[0];
  for (bool is_err : {false, true}) {
    // Task output may hold secrets: readable by the cluster's user only (RotatingFile: 0600).
    (is_err ? proc.err : proc.out).log->Open(LogPathOf(token, is_err), RotatingFile::Limits::FromEnvironment());
  }
  for (bool is_err : {false, true}) {
    int fd = is_err ? proc.err.fd : proc.out.fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    Status st = loop_->Add(fd, EPOLLIN, [this, token, is_err](uint32_t) {
      OnPipeReadable(token, is_err);
    });
    if (!st.ok()) QLOG(kWarning) << "cannot watch worker output: " << st.ToString();
  }
  QLOG(kInfo) << "started worker " << index << " pid=" << pid
              << (env_hash.empty() ? std::string() : " runtime_env=" + env_hash);
  return token;
}

std::string WorkerPool::LogPathOf(const std::string& token, bool is_stderr) const {
  auto it = workers_.find(token);
  std::string index = it == workers_.end() ? "unknown" : std::to_string(it->second.index);
  return options_.log_dir + "/worker-" + index + (is_stderr ? ".err" : ".out");
}

void WorkerPool::OnPipeReadable(const std::string& token, bool is_stderr) {
  auto it = workers_.find(token);
  if (it == workers_.end()) return;
  Pipe& p = is_stderr ? it->second.err : it->second.out;
  char buf[65536];
  // At most 1 MiB per readiness: a worker printing in a tight loop must not hold the loop.
  for (int round = 0; round < 16 && p.fd >= 0; ++round) {
    ssize_t n = ::read(p.fd, buf, sizeof buf);
    if (n > 0) {
      p.log->Write(std::string_view(buf, static_cast<size_t>(n)));
      p.partial.append(buf, static_cast<size_t>(n));
      size_t last_newline = p.partial.rfind('\n');
      if (last_newline != std::string::npos) {
        std::string lines = p.partial.substr(0, last_newline + 1);
        p.partial.erase(0, last_newline + 1);
        on_output_(token, is_stderr, std::move(lines));
      }
      if (p.partial.size() > kMaxPartialLine) {  // a line without end: forward it in pieces
        on_output_(token, is_stderr, std::move(p.partial) + "\n");
        p.partial.clear();
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF or error: flush an unterminated last line.
    if (!p.partial.empty()) on_output_(token, is_stderr, std::move(p.partial) + "\n");
    p.partial.clear();
    ClosePipe(p);
    return;
  }
}

void WorkerPool::ClosePipe(Pipe& p) {
  if (p.fd >= 0) {
    loop_->Remove(p.fd);
    ::close(p.fd);
    p.fd = -1;
  }
  p.log->Close();
}

void WorkerPool::Reap() {
  while (true) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->second.pid != pid) continue;
      std::string token = it->first;
      uint64_t index = it->second.index;
      // Drain what the worker wrote before dying.
      OnPipeReadable(token, false);
      OnPipeReadable(token, true);
      ClosePipe(it->second.out);
      ClosePipe(it->second.err);
      std::string err_log = LogPathOf(token, true);
      workers_.erase(it);
      QLOG(kInfo) << "worker " << index << " pid=" << pid << " exited, status " << status;
      on_exit_(token, status, err_log);
      break;
    }
  }
}

void WorkerPool::Kill(const std::string& token, int signal) {
  auto it = workers_.find(token);
  if (it != workers_.end()) ::kill(it->second.pid, signal);
}

void WorkerPool::KillAll() {
  for (auto& [token, proc] : workers_) ::kill(proc.pid, SIGKILL);
}

const std::string& WorkerPool::EnvOf(const std::string& token) const {
  static const std::string kNone;
  auto it = workers_.find(token);
  return it == workers_.end() ? kNone : it->second.env_hash;
}

pid_t WorkerPool::PidOf(const std::string& token) const {
  auto it = workers_.find(token);
  return it == workers_.end() ? 0 : it->second.pid;
}

}  // namespace quanta
