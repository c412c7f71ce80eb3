#include "common/rotating_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace quanta {
namespace {

namespace fs = std::filesystem;

class RotatingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "rotating-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

TEST_F(RotatingFileTest, RotatesBySizeKeepingAtMostTheBackups) {
  std::string path = (dir_ / "out.log").string();
  RotatingFile f;
  ASSERT_TRUE(f.Open(path, {100, 2}));
  std::string line(40, 'a');
  line.back() = '\n';
  for (int i = 0; i < 20; ++i) {
    line[0] = static_cast<char>('A' + i);
    f.Write(line);
  }
  f.Close();
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(fs::exists(path + ".1"));
  EXPECT_TRUE(fs::exists(path + ".2"));
  EXPECT_FALSE(fs::exists(path + ".3"));  // bounded: the oldest were deleted
  for (const auto& p : {path, path + ".1", path + ".2"}) EXPECT_LE(fs::file_size(p), 100u) << p;
  // The newest lines are in the live file, the ones before them in .1.
  EXPECT_EQ(Read(path).back(), '\n');
  EXPECT_EQ(Read(path).substr(Read(path).size() - 40, 1), "T");
  EXPECT_EQ(Read(path + ".1")[0] < Read(path)[0], true);
}

TEST_F(RotatingFileTest, ZeroBackupsStartsOverInPlace) {
  std::string path = (dir_ / "out.log").string();
  RotatingFile f;
  ASSERT_TRUE(f.Open(path, {50, 0}));
  for (int i = 0; i < 10; ++i) f.Write(std::string(20, 'x'));
  f.Close();
  EXPECT_LE(fs::file_size(path), 50u);
  EXPECT_FALSE(fs::exists(path + ".1"));
}

TEST_F(RotatingFileTest, FilesArePrivateAndNotOpenedThroughASymlink) {
  ::umask(0);
  std::string path = (dir_ / "out.log").string();
  RotatingFile f;
  ASSERT_TRUE(f.Open(path, {1 << 20, 1}));
  f.Write("secret\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  f.Close();
  ::umask(022);
  std::string target = (dir_ / "elsewhere").string();
  std::string link = (dir_ / "link.log").string();
  fs::create_symlink(target, link);
  RotatingFile g;
  EXPECT_FALSE(g.Open(link, {1 << 20, 1}));
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(RotatingFileTest, ConcurrentWritersLoseNoLineAndCutNone) {
  std::string path = (dir_ / "out.log").string();
  RotatingFile f;
  ASSERT_TRUE(f.Open(path, {1 << 20, 3}));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&f, t] {
      for (int i = 0; i < 1000; ++i) f.Write("thread " + std::to_string(t) + " line " + std::to_string(i) + "\n");
    });
  }
  for (auto& t : threads) t.join();
  f.Close();
  std::stringstream in(Read(path));
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.rfind("thread ", 0), 0u) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 4000);
}

TEST_F(RotatingFileTest, LimitsComeFromTheEnvironment) {
  ::setenv("QUANTA_LOG_MAX_BYTES", "12345", 1);
  ::setenv("QUANTA_LOG_BACKUPS", "7", 1);
  auto l = RotatingFile::Limits::FromEnvironment();
  EXPECT_EQ(l.max_bytes, 12345u);
  EXPECT_EQ(l.backups, 7);
  ::unsetenv("QUANTA_LOG_MAX_BYTES");
  ::unsetenv("QUANTA_LOG_BACKUPS");
  l = RotatingFile::Limits::FromEnvironment();
  EXPECT_EQ(l.max_bytes, 64ull << 20);
  EXPECT_EQ(l.backups, 5);
  ::setenv("QUANTA_LOG_MAX_BYTES", "12k", 1);  // not a number: the default, with a warning
  ::setenv("QUANTA_LOG_BACKUPS", "-2", 1);
  l = RotatingFile::Limits::FromEnvironment();
  EXPECT_EQ(l.max_bytes, 64ull << 20);
  EXPECT_EQ(l.backups, 5);
  ::unsetenv("QUANTA_LOG_MAX_BYTES");
  ::unsetenv("QUANTA_LOG_BACKUPS");
}

}  // namespace
}  // namespace quanta
