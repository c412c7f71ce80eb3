// Unit tests for node/worker_pool.h without Python: the "interpreter" is a shell script, so
// the pool's real fork/exec, environment, pipes, log files, SIGCHLD reaping and kill run
// unchanged. Checks what a worker sees (the token in its environment only, the daemon's secret
// stripped, extra variables overriding), line splitting of its output, and exit reporting.
#include "node/worker_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace quanta {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    std::string base = std::filesystem::temp_directory_path().string() + "/quanta_pool_test.XXXXXX";
    std::vector<char> buf(base.begin(), base.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    pool_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // A fake interpreter: gets the pool's argv ("-u -m quanta._private.worker_main <socket>").
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0700);
    return path;
  }
  void MakePool(const std::string& python, std::vector<std::string> extra_env = {}) {
    WorkerPool::Options o;
    o.python = python;
    o.node_socket = dir_ + "/node.sock";
    o.log_dir = dir_;
    o.extra_env = std::move(extra_env);
    pool_ = std::make_unique<WorkerPool>(
        &loop_, o,
        [this](const std::string& token, bool is_stderr, std::string text) {
          (is_stderr ? err_ : out_)[token] += text;
          ++chunks_;
        },
        [this](const std::string& token, int status, const std::string& log) {
          exits_[token] = status;
          err_logs_[token] = log;
        });
    ASSERT_TRUE(pool_->Init().ok());
  }
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_.RunAfter(5ms, [this] { loop_.Stop(); });
      loop_.Run();
    }
    return true;
  }

  net::EventLoop loop_;
  std::string dir_;
  std::unique_ptr<WorkerPool> pool_;
  std::map<std::string, std::string> out_, err_, err_logs_;
  std::map<std::string, int> exits_;
  int chunks_ = 0;
};

TEST_F(WorkerPoolTest, WorkerGetsArgsTokenAndEnvironmentAndItsOutputIsCaptured) {
  ::setenv("QUANTA_AUTH_TOKEN", "cluster-secret-must-not-leak", 1);
  ::setenv("QUANTA_POOL_TEST_INHERITED", "from-daemon", 1);
  ::setenv("QUANTA_POOL_TEST_OVERRIDE", "old", 1);
  MakePool(Script("py", R"(echo "args=$*"
echo "token=$QUANTA_WORKER_TOKEN index=$QUANTA_WORKER_INDEX"
echo "auth=${QUANTA_AUTH_TOKEN:-unset}"
echo "inherited=$QUANTA_POOL_TEST_INHERITED override=$QUANTA_POOL_TEST_OVERRIDE"
printf 'no newline at the end' >&2
exit 3)"),
           {"QUANTA_POOL_TEST_OVERRIDE=new"});
  ::unsetenv("QUANTA_AUTH_TOKEN");
  auto token = pool_->Start();
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  const std::string t = token.value();
  EXPECT_EQ(t.size(), 32u) << "16 random bytes, hex";
  EXPECT_GT(pool_->PidOf(t), 0);
  EXPECT_EQ(pool_->num_processes(), 1u);
  ASSERT_TRUE(RunUntil([&] { return exits_.count(t) > 0; }));

  EXPECT_TRUE(WIFEXITED(exits_[t]));
  EXPECT_EQ(WEXITSTATUS(exits_[t]), 3);
  const std::string& out = out_[t];
  EXPECT_NE(out.find("args=-u -m quanta._private.worker_main " + dir_ + "/node.sock\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("args=" + t), std::string::npos) << "the token is never on the command line";
  EXPECT_NE(out.find("token=" + t + " index=1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("auth=unset\n"), std::string::npos) << "the cluster secret is stripped: " << out;
  EXPECT_NE(out.find("inherited=from-daemon override=new\n"), std::string::npos) << out;
  EXPECT_EQ(err_[t], "no newline at the end\n") << "an unterminated last line is flushed at exit";

  // Log files: what it wrote, readable by the node's user only.
  EXPECT_EQ(err_logs_[t], dir_ + "/worker-1.err");
  EXPECT_EQ(ReadFile(dir_ + "/worker-1.err"), "no newline at the end");
  EXPECT_EQ(ReadFile(dir_ + "/worker-1.out"), out);
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/worker-1.out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Gone from the pool.
  EXPECT_EQ(pool_->PidOf(t), 0);
  EXPECT_EQ(pool_->num_processes(), 0u);
  ::unsetenv("QUANTA_POOL_TEST_INHERITED");
  ::unsetenv("QUANTA_POOL_TEST_OVERRIDE");
}

TEST_F(WorkerPoolTest, AWorkerIsStartedForOneRuntimeEnvironmentAndRemembersIt) {
  // The daemon's own QUANTA_RUNTIME_ENV* (if any) never leak: a worker sees only its own.
  ::setenv("QUANTA_RUNTIME_ENV", "{\"leaked\": 1}", 1);
  MakePool(Script("py", R"(echo "hash=${QUANTA_RUNTIME_ENV_HASH:-none} env=${QUANTA_RUNTIME_ENV:-none}")"));
  ::unsetenv("QUANTA_RUNTIME_ENV");
  auto plain = pool_->Start();
  auto with_env = pool_->Start("e3b0c442", R"({"env_vars": {"A": "1"}})");
  ASSERT_TRUE(plain.ok() && with_env.ok());
  EXPECT_EQ(pool_->EnvOf(*plain), "");
  EXPECT_EQ(pool_->EnvOf(*with_env), "e3b0c442");
  EXPECT_EQ(pool_->EnvOf("no-such-token"), "");
  ASSERT_TRUE(RunUntil([&] { return exits_.count(*plain) > 0 && exits_.count(*with_env) > 0; }));
  EXPECT_EQ(out_[*plain], "hash=none env=none\n");
  EXPECT_EQ(out_[*with_env], "hash=e3b0c442 env={\"env_vars\": {\"A\": \"1\"}}\n");
}

TEST_F(WorkerPoolTest, EachWorkerHasItsOwnTokenIndexAndLogs) {
  MakePool(Script("py", "echo \"i=$QUANTA_WORKER_INDEX\""));
  auto a = pool_->Start(), b = pool_->Start();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.value(), b.value());
  ASSERT_TRUE(RunUntil([&] { return exits_.size() == 2; }));
  EXPECT_EQ(out_[a.value()], "i=1\n");
  EXPECT_EQ(out_[b.value()], "i=2\n");
  EXPECT_EQ(ReadFile(dir_ + "/worker-2.out"), "i=2\n");
}

TEST_F(WorkerPoolTest, KillEndsTheWorkerAndReportsTheSignal) {
  MakePool(Script("py", "echo started\nexec sleep 30"));
  auto t = pool_->Start();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(RunUntil([&] { return out_[t.value()] == "started\n"; }));
  pool_->Kill(t.value(), SIGKILL);
  ASSERT_TRUE(RunUntil([&] { return exits_.count(t.value()) > 0; }));
  EXPECT_TRUE(WIFSIGNALED(exits_[t.value()]));
  EXPECT_EQ(WTERMSIG(exits_[t.value()]), SIGKILL);
  pool_->Kill(t.value(), SIGKILL);  // gone: a no-op
  pool_->Kill("no-such-token", SIGKILL);
}

TEST_F(WorkerPoolTest, AnInterpreterThatCannotRunExits127) {
  MakePool(dir_ + "/does-not-exist");
  auto t = pool_->Start();
  ASSERT_TRUE(t.ok()) << "fork succeeds; the exec fails in the child";
  ASSERT_TRUE(RunUntil([&] { return exits_.count(t.value()) > 0; }));
  EXPECT_TRUE(WIFEXITED(exits_[t.value()]));
  EXPECT_EQ(WEXITSTATUS(exits_[t.value()]), 127);
}

TEST_F(WorkerPoolTest, OutputIsForwardedInWholeLinesAndEndlessLinesInPieces) {
  // Lines written in fragments arrive whole; a 200 KB line without a newline is cut at 64 KiB.
  MakePool(Script("py", R"(printf 'part one, '; sleep 0.2; printf 'part two\nsecond line\n'
head -c 200000 /dev/zero | tr '\0' 'x' >&2
sleep 0.2
echo >&2
echo done)"));
  auto t = pool_->Start();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(RunUntil([&] { return exits_.count(t.value()) > 0; }));
  EXPECT_EQ(out_[t.value()], "part one, part two\nsecond line\ndone\n");
  const std::string& err = err_[t.value()];
  EXPECT_EQ(std::count(err.begin(), err.end(), 'x'), 200000);
  size_t longest = 0, start = 0;
  for (size_t nl = err.find('\n'); nl != std::string::npos; start = nl + 1, nl = err.find('\n', start)) {
    longest = std::max(longest, nl - start);
  }
  EXPECT_LE(longest, 64u * 1024 + 65536) << "an endless line is forwarded in bounded pieces";
  EXPECT_GE(std::count(err.begin(), err.end(), '\n'), 3);
}

TEST_F(WorkerPoolTest, DestroyingThePoolKillsItsWorkers) {
  MakePool(Script("py", "exec sleep 30"));
  auto t = pool_->Start();
  ASSERT_TRUE(t.ok());
  pid_t pid = pool_->PidOf(t.value());
  ASSERT_GT(pid, 0);
  pool_.reset();
  int status = 0;
  // The SIGKILL was sent: the child is reaped here (the pool is gone).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(r, pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

}  // namespace
}  // namespace quanta
