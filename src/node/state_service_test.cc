// Unit tests for node/state_service.h with fake sources: answers for this node, relays to peers
// (routed back by id, failed when unreachable, gone or silent), log listing and bounded reads
// that refuse paths and symlinks, host counters from a planted /proc, and the wire encodings.
#include "node/state_service.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::NodeStateQuery;
using protocol::NodeStateReply;
using protocol::StateKind;

template <typename M>
M Decode(const std::string& body) {
  M m;
  EXPECT_TRUE(protocol::DecodeMessage(body, &m).ok());
  return m;
}

class StateServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/quanta-state-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    Write(dir_ + "/worker-1.out", "line one\nline two\n");
    Write(dir_ + "/node.log", std::string(1000, 'x'));
    Write(dir_ + "-secret", "not a log");  // beside the log folder, not in it
    ASSERT_EQ(::symlink((dir_ + "-secret").c_str(), (dir_ + "/link.log").c_str()), 0);
    ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
    Make(10s);
  }
  void TearDown() override {
    service_.reset();
    std::string cmd = "rm -rf '" + dir_ + "' '" + dir_ + "-secret'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  void Make(std::chrono::milliseconds timeout, std::string proc = "/proc") {
    service_ = std::make_unique<StateService>(
        &loop_, StateService::Options{dir_, timeout, proc},
        StateService::Sources{
            [] { return 7u; },
            [] {
              protocol::ProcessList l;
              protocol::ProcessInfo p;
              p.client_id = (7ull << 32) | 3;
              p.pid = 4242;
              p.state = protocol::ProcessInfo::State::kBusy;
              p.task_name = "work";
              l.processes.push_back(p);
              return l;
            },
            [] {
              protocol::StoreStatsReply s;
              s.capacity = 100;
              s.used = 40;
              return s;
            },
            [] { return std::vector<std::pair<std::string, int64_t>>{{"workers", 3}}; },
            [this](uint32_t node, const NodeStateQuery& q) {
              if (node == 99) return false;
              to_peer_.push_back({node, q});
              return true;
            },
            [this](uint32_t node, const NodeStateReply& r) { peer_replies_.push_back({node, r}); },
            [this](uint64_t client, const NodeStateReply& r) { client_replies_.push_back({client, r}); }});
  }
  NodeStateReply AskLocal(StateKind kind, std::string arg = "", int64_t offset = 0, uint64_t limit = 0) {
    NodeStateQuery q{5, 0, kind, std::move(arg), offset, limit};
    service_->OnClientQuery(11, q);
    EXPECT_EQ(client_replies_.size(), 1u);
    NodeStateReply r = client_replies_.back().second;
    client_replies_.clear();
    EXPECT_EQ(r.request_id, 5u);
    return r;
  }
  void RunFor(std::chrono::milliseconds d) {
    loop_.RunAfter(d, [this] { loop_.Stop(); });
    loop_.Run();
  }

  net::EventLoop loop_;
  std::string dir_;
  std::unique_ptr<StateService> service_;
  std::vector<std::pair<uint32_t, NodeStateQuery>> to_peer_;
  std::vector<std::pair<uint32_t, NodeStateReply>> peer_replies_;
  std::vector<std::pair<uint64_t, NodeStateReply>> client_replies_;
};

TEST_F(StateServiceTest, AnswersForThisNodeByIndexOrZero) {
  NodeStateReply r = AskLocal(StateKind::kProcesses);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.node_index, 7u);
  auto list = Decode<protocol::ProcessList>(r.body);
  ASSERT_EQ(list.processes.size(), 1u);
  EXPECT_EQ(list.processes[0].pid, 4242u);
  EXPECT_EQ(list.processes[0].task_name, "work");
  service_->OnClientQuery(11, NodeStateQuery{6, 7, StateKind::kObjects, "", 0, 0});
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_EQ(Decode<protocol::StoreStatsReply>(client_replies_[0].second.body).used, 40u);
  EXPECT_TRUE(to_peer_.empty());
}

TEST_F(StateServiceTest, RelaysToAPeerAndRoutesTheAnswerBack) {
  service_->OnClientQuery(11, NodeStateQuery{5, 3, StateKind::kObjects, "", 0, 0});
  service_->OnClientQuery(12, NodeStateQuery{5, 4, StateKind::kObjects, "", 0, 0});
  ASSERT_EQ(to_peer_.size(), 2u);
  EXPECT_EQ(to_peer_[0].first, 3u);
  EXPECT_NE(to_peer_[0].second.request_id, to_peer_[1].second.request_id);  // ours, not the clients'
  EXPECT_TRUE(client_replies_.empty());
  // A reply with the right id from the wrong node is not taken for the answer.
  NodeStateReply answer;
  answer.ok = true;
  answer.request_id = to_peer_[1].second.request_id;
  answer.body = "x";
  service_->OnPeerReply(3, answer);
  EXPECT_TRUE(client_replies_.empty());
  service_->OnPeerReply(4, answer);
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_EQ(client_replies_[0].first, 12u);
  EXPECT_EQ(client_replies_[0].second.request_id, 5u);
  EXPECT_EQ(client_replies_[0].second.body, "x");
  service_->OnPeerReply(4, answer);  // a duplicate goes nowhere
  EXPECT_EQ(client_replies_.size(), 1u);
  EXPECT_EQ(service_->num_pending(), 1u);
}

TEST_F(StateServiceTest, AnswersAPeersQueryOnItsChannel) {
  service_->OnPeerQuery(2, NodeStateQuery{77, 7, StateKind::kHostStats, "", 0, 0});
  ASSERT_EQ(peer_replies_.size(), 1u);
  EXPECT_EQ(peer_replies_[0].first, 2u);
  EXPECT_EQ(peer_replies_[0].second.request_id, 77u);
  EXPECT_TRUE(peer_replies_[0].second.ok);
}

TEST_F(StateServiceTest, FailsRelaysToUnreachableDeadOrSilentNodes) {
  service_->OnClientQuery(11, NodeStateQuery{1, 99, StateKind::kObjects, "", 0, 0});
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_FALSE(client_replies_[0].second.ok);
  EXPECT_NE(client_replies_[0].second.error.find("not reachable"), std::string::npos);
  EXPECT_TRUE(client_replies_[0].second.unavailable);
  client_replies_.clear();
  service_->OnClientQuery(11, NodeStateQuery{2, 3, StateKind::kObjects, "", 0, 0});
  service_->OnNodeGone(3, "it is dead (no heartbeat)");
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_EQ(client_replies_[0].second.request_id, 2u);
  EXPECT_NE(client_replies_[0].second.error.find("no heartbeat"), std::string::npos);
  client_replies_.clear();
  Make(50ms);
  service_->OnClientQuery(11, NodeStateQuery{3, 4, StateKind::kObjects, "", 0, 0});
  RunFor(200ms);
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_NE(client_replies_[0].second.error.find("did not answer"), std::string::npos);
  EXPECT_EQ(service_->num_pending(), 0u);
}

TEST_F(StateServiceTest, BoundsRelaysInFlight) {
  for (size_t i = 0; i < StateService::kMaxPending; ++i) {
    service_->OnClientQuery(11, NodeStateQuery{i, 3, StateKind::kObjects, "", 0, 0});
  }
  EXPECT_TRUE(client_replies_.empty());
  service_->OnClientQuery(11, NodeStateQuery{5000, 3, StateKind::kObjects, "", 0, 0});
  ASSERT_EQ(client_replies_.size(), 1u);
  EXPECT_NE(client_replies_[0].second.error.find("too many"), std::string::npos);
  EXPECT_EQ(to_peer_.size(), StateService::kMaxPending);
}

TEST_F(StateServiceTest, ListsRegularLogFilesOnly) {
  NodeStateReply r = AskLocal(StateKind::kLogFiles);
  ASSERT_TRUE(r.ok) << r.error;
  auto list = Decode<protocol::LogFileList>(r.body);
  std::map<std::string, uint64_t> sizes;
  for (const auto& f : list.files) sizes[f.name] = f.size;
  EXPECT_EQ(sizes, (std::map<std::string, uint64_t>{{"node.log", 1000}, {"worker-1.out", 18}}));
}

TEST_F(StateServiceTest, ReadsBoundedSlicesFromStartOrEnd) {
  NodeStateReply r = AskLocal(StateKind::kLogRead, "worker-1.out");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.body, "line one\nline two\n");
  EXPECT_EQ(r.size, 18u);
  r = AskLocal(StateKind::kLogRead, "worker-1.out", -9);
  EXPECT_EQ(r.body, "line two\n");
  EXPECT_EQ(r.offset, 9u);
  r = AskLocal(StateKind::kLogRead, "worker-1.out", 5, 3);
  EXPECT_EQ(r.body, "one");
  r = AskLocal(StateKind::kLogRead, "worker-1.out", 500);  // past the end: nothing, and the size
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.offset, 18u);
  r = AskLocal(StateKind::kLogRead, "node.log", -100000);
  EXPECT_EQ(r.body.size(), 1000u);
  Write(dir_ + "/big.log", std::string(StateService::kMaxRead + 10, 'y'));
  r = AskLocal(StateKind::kLogRead, "big.log", 0, 1ull << 40);
  EXPECT_EQ(r.body.size(), StateService::kMaxRead);
  r = AskLocal(StateKind::kLogRead, "big.log");
  EXPECT_EQ(r.body.size(), StateService::kDefaultRead);
}

TEST_F(StateServiceTest, RefusesPathsSymlinksAndFolders) {
  std::string outside = dir_.substr(dir_.rfind('/') + 1) + "-secret";
  for (std::string name : {"../" + outside, dir_ + "-secret", std::string(".."), std::string("link.log"),
                           std::string("sub"), std::string(""), std::string("missing.log")}) {
    NodeStateReply r = AskLocal(StateKind::kLogRead, name);
    EXPECT_FALSE(r.ok) << name;
    EXPECT_FALSE(r.unavailable) << name;  // refused by the node, which was there to answer
    EXPECT_EQ(r.body, "") << name;
  }
  EXPECT_FALSE(IsPlainFileName(std::string("a\0b", 3)));
  EXPECT_TRUE(IsPlainFileName("worker-3.err.1"));
}

TEST_F(StateServiceTest, HostCountersComeFromProc) {
  std::string proc = dir_ + "/proc";
  ASSERT_EQ(::mkdir(proc.c_str(), 0700), 0);
  long hz = ::sysconf(_SC_CLK_TCK);
  Write(proc + "/stat", "cpu  " + std::to_string(3 * hz) + " 0 " + std::to_string(hz) + " " + std::to_string(6 * hz) +
                            " 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
  Write(proc + "/meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n");
  Write(proc + "/loadavg", "1.50 0.5 0.2 1/100 42\n");
  Make(10s, proc);
  NodeStateReply r = AskLocal(StateKind::kHostStats);
  ASSERT_TRUE(r.ok);
  std::map<std::string, int64_t> c;
  for (const auto& [k, v] : Decode<protocol::NodeStats>(r.body).counters) c[k] = v;
  EXPECT_EQ(c["host_cpu_total_ms"], 10000);
  EXPECT_EQ(c["host_cpu_busy_ms"], 4000);
  EXPECT_EQ(c["host_memory_total"], 1000 * 1024);
  EXPECT_EQ(c["host_memory_available"], 400 * 1024);
  EXPECT_EQ(c["host_load1_milli"], 1500);
  EXPECT_EQ(c["workers"], 3);
}

TEST(StateMessagesTest, RoundTripAndRejectForgedInput) {
  protocol::ProcessList l;
  protocol::ProcessInfo p;
  p.client_id = 9;
  p.role = protocol::ClientRole::kObserver;
  p.state = protocol::ProcessInfo::State::kObserver;
  p.stdout_log = "worker-2.out";
  l.processes = {p, p};
  std::string body;
  protocol::Writer w(&body);
  l.Encode(w);
  auto back = Decode<protocol::ProcessList>(body);
  ASSERT_EQ(back.processes.size(), 2u);
  EXPECT_EQ(back.processes[1].stdout_log, "worker-2.out");
  EXPECT_EQ(back.processes[1].role, protocol::ClientRole::kObserver);
  // A forged count cannot make the decoder allocate for elements that are not there.
  std::string forged = "\xff\xff\xff\x7f";
  protocol::ProcessList bad;
  EXPECT_FALSE(protocol::DecodeMessage(forged, &bad).ok());
  NodeStateQuery q{1, 2, StateKind::kLogRead, "a.log", -5, 10};
  std::string qb;
  protocol::Writer qw(&qb);
  q.Encode(qw);
  auto q2 = Decode<NodeStateQuery>(qb);
  EXPECT_EQ(q2.arg, "a.log");
  EXPECT_EQ(q2.offset, -5);
  qb[12] = 9;  // an unknown kind
  EXPECT_FALSE(protocol::DecodeMessage(qb, &q2).ok());
}

}  // namespace
}  // namespace quanta
