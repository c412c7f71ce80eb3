// A node's ControlClient and a real control service in a child process that is SIGKILLed and
// started again: with a store, the node waits for it, queues what it sends meanwhile, rejoins
// under its index and the restarted head knows what was queued and the node's functions; without
// one, nothing is queued and the restarted head refuses the node, which is told to stop.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>

#include "control/control_server.h"
#include "control/table_store.h"
#include "node/control_client.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;

std::string TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/crt_XXXXXX";
  return ::mkdtemp(tmpl.data());
}

// The control service in a child process (so that it can be SIGKILLed like a real head).
pid_t StartHead(const std::string& dir, const std::string& storage,
                std::chrono::milliseconds rejoin_grace = std::chrono::milliseconds(10000)) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  net::EventLoop loop;
  if (!loop.Init().ok()) ::_exit(2);
  std::unique_ptr<TableStore> store;
  if (!storage.empty()) {
    auto s = OpenTableStore(storage);
    if (!s.ok()) ::_exit(3);
    store = std::move(s).value();
  }
  ControlOptions opts;
  opts.session_dir = dir;
  opts.socket_path = dir + "/control.sock";
  opts.rejoin_grace = rejoin_grace;
  ControlServer server(&loop, opts, std::move(store));
  if (!server.Start().ok()) ::_exit(4);
  loop.Run();
  ::_exit(0);
}

void Kill(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// Runs the loop until `done` holds or `timeout` passed; returns `done()`.
bool RunUntil(net::EventLoop& loop, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::function<void()> check = [&] {
    if (done() || std::chrono::steady_clock::now() > deadline) {
      loop.Stop();
      return;
    }
    loop.RunAfter(10ms, check);
  };
  loop.RunAfter(0ms, check);
  loop.Run();
  return done();
}

class ControlRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    ASSERT_TRUE(loop_.Init().ok());
    functions_.Add("f1", "the payload of f1");
    client_ = std::make_unique<ControlClient>(
        &loop_, ControlClient::Options{dir_ + "/control.sock", "", 0, 5000ms}, nullptr, &view_, &functions_,
        ControlClient::Callbacks{[] {
                                   protocol::NodeInfo n;
                                   n.node_id = "node-a";
                                   n.total = {{"CPU", 2 * protocol::kResourceUnit}};
                                   n.available = n.total;
                                   n.alive = true;
                                   return n;
                                 },
                                 [this](const protocol::RegisterNodeReply&) { joined_ = true; },
                                 [this](const std::string& why) { refused_ = why; },
                                 [this](const std::string& why) { drained_ = why; }});
    client_->set_on_rejoined([this] { ++rejoins_; });
    client_->set_on_message([this](const protocol::Frame& f) {
      if (static_cast<MessageType>(f.type) == MessageType::kActorUpdate) {
        protocol::ActorInfo a;
        if (protocol::DecodeMessage(f.body, &a).ok()) actor_ = a;
      } else if (static_cast<MessageType>(f.type) == MessageType::kControlReply) {
        protocol::ControlReply r;
        if (protocol::DecodeMessage(f.body, &r).ok()) reply_ = r;
      }
    });
  }
  void TearDown() override {
    client_->Shutdown();
    if (head_ > 0) Kill(head_);
  }
  void Restart(const std::string& storage) {
    Kill(head_);
    head_ = StartHead(dir_, storage);
  }

  std::string dir_;
  net::EventLoop loop_;
  ClusterView view_{[](const protocol::NodeInfo&) {}, [](const protocol::NodeInfo&) {}};
  FunctionTable functions_;
  std::unique_ptr<ControlClient> client_;
  pid_t head_ = -1;
  bool joined_ = false;
  int rejoins_ = 0;
  std::string refused_, drained_;
  protocol::ActorInfo actor_;
  protocol::ControlReply reply_;
};

TEST_F(ControlRestart, WithAStoreTheNodeWaitsQueuesAndRejoinsUnderItsIndex) {
  std::string db = dir_ + "/head.db";
  head_ = StartHead(dir_, db);
  client_->Start();
  ASSERT_TRUE(RunUntil(loop_, [&] { return client_->connected(); }, 10s)) << refused_;
  uint32_t index = client_->node_index();
  uint64_t cluster = client_->cluster_id();
  ASSERT_EQ(index, 1u);

  Kill(head_);
  head_ = -1;
  ASSERT_TRUE(RunUntil(loop_, [&] { return client_->waiting_for_head(); }, 10s));
  ObjectID actor = ObjectID::Make((uint64_t{index} << 32) | 1, 1, 0);
  protocol::ActorInfo report;
  report.actor_id = actor;
  report.state = protocol::ActorInfo::State::kAlive;
  report.node_index = index;
  report.owner_node = index;
  report.class_name = "Counter";
  client_->Send(MessageType::kActorUpdate, report);  // queued: the head is down

  head_ = StartHead(dir_, db);
  ASSERT_TRUE(RunUntil(loop_, [&] { return rejoins_ == 1; }, 10s)) << drained_;
  EXPECT_EQ(client_->node_index(), index);
  EXPECT_EQ(client_->cluster_id(), cluster) << "the cluster id is persisted";
  EXPECT_TRUE(drained_.empty()) << drained_;
  // The restarted head got the report queued while it was down.
  client_->Send(MessageType::kSubscribeActor, protocol::IdList{{actor}});
  ASSERT_TRUE(RunUntil(loop_, [&] { return actor_.actor_id == actor; }, 5s));
  EXPECT_EQ(actor_.state, protocol::ActorInfo::State::kAlive);
  EXPECT_EQ(actor_.class_name, "Counter");
  // And the node's functions, sent again on rejoin.
  protocol::ControlRequest get;
  get.request_id = 7;
  get.op = protocol::ControlOp::kGetFunction;
  get.value = "f1";
  client_->Send(MessageType::kControlRequest, get);
  ASSERT_TRUE(RunUntil(loop_, [&] { return reply_.request_id == 7; }, 5s));
  EXPECT_TRUE(reply_.ok) << reply_.error;
  EXPECT_EQ(reply_.blob, "the payload of f1");
}

TEST_F(ControlRestart, ANewNodeJoinsARestartedHeadOnceTheOldOnesAreBackOrDead) {
  std::string db = dir_ + "/head.db";
  head_ = StartHead(dir_, db);
  client_->Start();
  ASSERT_TRUE(RunUntil(loop_, [&] { return client_->connected(); }, 10s)) << refused_;
  client_->Shutdown();  // node A will not come back
  Kill(head_);
  head_ = StartHead(dir_, db, 1500ms);
  bool b_joined = false;
  FunctionTable none;
  ControlClient b(&loop_, ControlClient::Options{dir_ + "/control.sock", "", 0, 5000ms}, nullptr, &view_, &none,
                  ControlClient::Callbacks{[] {
                                             protocol::NodeInfo n;
                                             n.node_id = "node-b";
                                             n.alive = true;
                                             return n;
                                           },
                                           [&](const protocol::RegisterNodeReply&) { b_joined = true; },
                                           [&](const std::string& why) { refused_ = why; },
                                           [&](const std::string& why) { drained_ = why; }});
  auto t0 = std::chrono::steady_clock::now();
  b.Start();
  ASSERT_TRUE(RunUntil(loop_, [&] { return b_joined; }, 10s)) << refused_;
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(waited, 1000ms) << "held while node A could still rejoin";
  EXPECT_EQ(b.node_index(), 2u);
  const protocol::NodeInfo* a = view_.Find(1);
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->alive);
  EXPECT_NE(a->death_reason.find("did not rejoin the restarted head within 1500 ms"), std::string::npos)
      << a->death_reason;
  b.Shutdown();
}

TEST_F(ControlRestart, WithoutAStoreNothingIsQueuedAndTheRestartedHeadRefusesTheNode) {
  head_ = StartHead(dir_, "");
  client_->Start();
  ASSERT_TRUE(RunUntil(loop_, [&] { return client_->connected(); }, 10s)) << refused_;
  Restart("");
  bool ever_waiting = false;
  ASSERT_TRUE(RunUntil(loop_, [&] {
    ever_waiting = ever_waiting || client_->waiting_for_head();
    return !drained_.empty();
  }, 10s));
  EXPECT_FALSE(ever_waiting) << "a head without tables cannot take the node back: nothing to wait for";
  EXPECT_NE(drained_.find("refused this node's rejoin"), std::string::npos) << drained_;
  EXPECT_NE(drained_.find("restarted without its tables"), std::string::npos) << drained_;
  EXPECT_EQ(rejoins_, 0);
}

}  // namespace
}  // namespace quanta
