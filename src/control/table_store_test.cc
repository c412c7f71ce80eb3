// TableStore: SQLite on a real file, Redis on a real redis-server started on a free port.
#include "control/table_store.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

namespace quanta {
namespace {

std::string TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/table_store_XXXXXX";
  return ::mkdtemp(tmpl.data());
}

std::map<std::string, std::string> AsMap(const TableStore::Rows& rows) { return {rows.begin(), rows.end()}; }

// The same checks against either implementation.
void ExerciseStore(TableStore& s) {
  std::string binary_key("a\0b", 3), big(300000, 'x');
  ASSERT_TRUE(s.Put("kv", binary_key, "1").ok());
  ASSERT_TRUE(s.Put("kv", "k2", big).ok());
  ASSERT_TRUE(s.Put("nodes", U32Key(7), "node seven").ok());
  ASSERT_TRUE(s.Put("kv", "k2", "replaced").ok());
  auto kv = s.Load("kv");
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  EXPECT_EQ(AsMap(kv.value()), (std::map<std::string, std::string>{{binary_key, "1"}, {"k2", "replaced"}}));
  ASSERT_TRUE(s.Delete("kv", binary_key).ok());
  ASSERT_TRUE(s.Delete("kv", "never there").ok());
  kv = s.Load("kv");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(AsMap(kv.value()), (std::map<std::string, std::string>{{"k2", "replaced"}}));
  auto nodes = s.Load("nodes");
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ(KeyU64(nodes.value()[0].first), 7u);
  EXPECT_TRUE(s.Load("empty")->empty());
  // More rows than one page of a Redis scan.
  for (int i = 0; i < 2500; ++i) ASSERT_TRUE(s.Put("many", U64Key(i), std::to_string(i)).ok());
  auto many = s.Load("many");
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(AsMap(many.value()).size(), 2500u);
  EXPECT_EQ(AsMap(many.value())[U64Key(2499)], "2499");
}

TEST(TableStore, KeysSortAsNumbers) {
  EXPECT_LT(U32Key(255), U32Key(256));
  EXPECT_LT(U64Key(1), U64Key(uint64_t(1) << 40));
  EXPECT_EQ(KeyU64(U64Key(0x123456789abcdefULL)), 0x123456789abcdefULL);
}

TEST(TableStore, RefusesAnUnknownScheme) {
  auto s = OpenTableStore("http://example:1");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("redis://HOST:PORT or a file path"), std::string::npos);
}

TEST(SqliteTableStore, StoresDeletesAndReloadsAfterReopening) {
  std::string path = TempDir() + "/head.db";
  {
    auto s = OpenTableStore(path);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s.value()->Describe(), "sqlite:" + path);
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "the tables hold KV values: this user's only";
    ExerciseStore(*s.value());
  }
  auto again = OpenTableStore(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(AsMap(again.value()->Load("kv").value()), (std::map<std::string, std::string>{{"k2", "replaced"}}));
}

TEST(SqliteTableStore, WritesSurviveTheProcessBeingKilled) {
  std::string path = TempDir() + "/head.db";
  pid_t child = ::fork();
  if (child == 0) {
    auto s = OpenTableStore(path);
    if (!s.ok()) ::_exit(1);
    for (int i = 0; i < 200; ++i) {
      std::string v = "v";
      v += std::to_string(i);
      if (!s.value()->Put("kv", U64Key(i), v).ok()) ::_exit(2);
    }
    ::kill(::getpid(), SIGKILL);  // no close, no checkpoint
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited with " << WEXITSTATUS(status);
  auto s = OpenTableStore(path);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto rows = s.value()->Load("kv");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 200u);
  EXPECT_EQ(AsMap(rows.value())[U64Key(199)], "v199");
}

TEST(SqliteTableStore, OneHeadPerFile) {
  std::string path = TempDir() + "/head.db";
  auto first = OpenTableStore(path);
  ASSERT_TRUE(first.ok());
  auto second = OpenTableStore(path);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another running control service"), std::string::npos);
}

TEST(SqliteTableStore, RefusesAFileThatIsNotADatabase) {
  std::string path = TempDir() + "/not.db";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("this is not an sqlite file, just text long enough to have a header.............", f);
  std::fclose(f);
  auto s = OpenTableStore(path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(path), std::string::npos);
}


// A real redis-server on a free port in a temp dir, or a skip naming why not.
class RedisServer {
 public:
  RedisServer() {
    if (std::system("command -v redis-server > /dev/null 2>&1") != 0) {
      skip_ = "redis-server is not installed (Debian: apt-get install redis-server)";
      return;
    }
    dir_ = TempDir();
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::close(fd);
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir", dir_.c_str(),
               "--save", "", "--appendonly", "yes", "--logfile", (dir_ + "/redis.log").c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {  // up to 5 s for it to listen
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      bool up = ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(c);
      if (up) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    skip_ = "redis-server did not listen on port " + std::to_string(port_) + " within 5 s";
  }
  ~RedisServer() { Stop(); }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  std::string url(const std::string& prefix = "") const {
    return "redis://127.0.0.1:" + std::to_string(port_) + (prefix.empty() ? "" : "/" + prefix);
  }
  const std::string& skip() const { return skip_; }

 private:
  std::string dir_, skip_;
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST(RedisTableStore, StoresDeletesAndReloadsInANewConnection) {
  RedisServer server;
  if (!server.skip().empty()) GTEST_SKIP() << server.skip();
  {
    auto s = OpenTableStore(server.url());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ExerciseStore(*s.value());
  }
  auto again = OpenTableStore(server.url());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(AsMap(again.value()->Load("kv").value()), (std::map<std::string, std::string>{{"k2", "replaced"}}));
  // Another prefix is another cluster's tables.
  auto other = OpenTableStore(server.url("other"));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other.value()->Load("kv")->empty());
}

TEST(RedisTableStore, AnUnreachableServerIsAClearError) {
  RedisServer server;
  if (!server.skip().empty()) GTEST_SKIP() << server.skip();
  std::string url = server.url();
  server.Stop();
  auto s = OpenTableStore(url);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cannot reach the redis-server of --storage " + url), std::string::npos)
      << s.status().message();
}

TEST(RedisTableStore, AServerThatGoesAwayFailsWritesWithoutHanging) {
  RedisServer server;
  if (!server.skip().empty()) GTEST_SKIP() << server.skip();
  auto s = OpenTableStore(server.url());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s.value()->Put("kv", "a", "1").ok());
  server.Stop();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.value()->Put("kv", "b", "2").ok());
  s.value()->Write("kv", "c", "3");
  EXPECT_EQ(s.value()->failed_writes(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(RedisTableStore, BadUrlsAreRefused) {
  for (const char* url : {"redis://:6379", "redis://host:notaport", "redis://host:0", "redis://user:pw@host:1"}) {
    auto s = OpenTableStore(url);
    EXPECT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << url;
  }
}

}  // namespace
}  // namespace quanta
