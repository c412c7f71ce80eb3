// Unit tests for actor lanes: the router's lane route (one route at a time, a broken lane's
// calls waiting for the actor's fate), the actor node's LaneAcceptor (exactly a LaneHello, then
// the socket is handed over or closed), the caller node's ActorLanes (opening, results, a
// worker that answers for a call it was not sent) and the worker's WorkerLanes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/worker_lanes.h"
#include "net/event_loop.h"
#include "node/actor_lanes.h"
#include "node/actor_router.h"
#include "node/lane_acceptor.h"
#include "protocol/lane_messages.h"

namespace quanta {
namespace {

using namespace std::chrono_literals;
using protocol::ActorInfo;
using State = ActorInfo::State;
using Lane = ActorRouter::Callbacks::Lane;

constexpr uint64_t kCaller = (1ull << 32) | 7;

// ----------------------------------------------------------------------------- router

class RouterLaneTest : public ::testing::Test {
 protected:
  RouterLaneTest()
      : router_(&tasks_, ActorRouter::Callbacks{
                             [](const ObjectID&) { return false; },
                             [this](const TaskID& id, const protocol::ObjectValue& e) {
                               failed_.push_back({id, e.data});
                               tasks_.erase(id);
                             },
                             [this](Task& t, uint32_t node) {
                               t.forwarded_to = node;
                               route_.push_back("node:" + std::to_string(t.spec.task_id.Sequence()));
                               return true;
                             },
                             [](const ObjectID&) {},
                             [](uint32_t, const ObjectID&, bool, const std::string&) {},
                             [](uint32_t, const protocol::CancelTask&) {},
                             [](const std::vector<ObjectID>&) {},
                             [](const protocol::TaskSpec&) {},
                             [](const ObjectID&, std::deque<TaskID>) {},
                             [this](const Task& t, uint32_t) {
                               ++routes_asked_;
                               return t.spec.name == "small" ? (lane_full_ ? Lane::kWait : Lane::kYes) : Lane::kNo;
                             },
                             [this](Task& t, uint32_t node) {
                               t.forwarded_to = node;
                               t.via_lane = true;
                               ++on_lane_;
                               route_.push_back("lane:" + std::to_string(t.spec.task_id.Sequence()));
                               return true;
                             },
                             [this](const ObjectID&) { return on_lane_; },
                             [](const ObjectID&, const protocol::CancelTask&) { return true; },
                             [this](const ObjectID&, const std::string&) { ++lane_closes_; },
                             [this](std::chrono::milliseconds, std::function<void()> fn) { timers_.push_back(fn); }}) {}

  TaskID Call(uint32_t seq, const char* name) {
    TaskID id = ObjectID::Make(kCaller, seq, 0);
    Task& t = tasks_[id];
    t.spec.task_id = id;
    t.spec.kind = protocol::TaskKind::kActorMethod;
    t.spec.actor_id = actor_;
    t.spec.name = name;
    t.deps_ready = true;
    router_.OnCall(id);
    return id;
  }
  void End(const TaskID& id) {  // as TaskManager::Finish does
    Task t = tasks_.at(id);
    tasks_.erase(id);
    if (t.via_lane) --on_lane_;
    router_.OnCallEnded(t);
  }
  void Alive() {
    ActorInfo info;
    info.actor_id = actor_;
    info.state = State::kAlive;
    info.node_index = 4;
    router_.OnActorUpdate(info);
  }

  ObjectID actor_ = ObjectID::Make((1ull << 32) | 1, 1, 0);
  TaskTable tasks_;
  ActorRouter router_;
  std::vector<std::string> route_;
  std::vector<std::pair<TaskID, std::string>> failed_;
  std::vector<std::function<void()>> timers_;
  size_t on_lane_ = 0;
  int routes_asked_ = 0, lane_closes_ = 0;
  bool lane_full_ = false;
};

TEST_F(RouterLaneTest, CallsTakeOneRouteAtATimeSoOrderHolds) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});
  Alive();
  TaskID c1 = Call(1, "small"), c2 = Call(2, "big"), c3 = Call(3, "small"), c4 = Call(4, "small");
  router_.Pump(actor_);
  EXPECT_EQ(route_, (std::vector<std::string>{"lane:1"})) << "the node-way call waits for the lane call";
  End(c1);
  EXPECT_EQ(route_, (std::vector<std::string>{"lane:1", "node:2"})) << "and the lane calls wait for it";
  End(c2);
  EXPECT_EQ(route_, (std::vector<std::string>{"lane:1", "node:2", "lane:3", "lane:4"}));
  End(c3);
  End(c4);
  EXPECT_TRUE(failed_.empty());
}

TEST_F(RouterLaneTest, AFullLaneHoldsCallsInsteadOfSendingThemTheOtherWay) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});
  Alive();
  lane_full_ = true;
  Call(1, "small");
  router_.Pump(actor_);
  EXPECT_TRUE(route_.empty());
  lane_full_ = false;
  router_.Pump(actor_);
  EXPECT_EQ(route_, (std::vector<std::string>{"lane:1"}));
}

TEST_F(RouterLaneTest, NoLaneIsAskedForBeforeTheActorIsAlive) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});  // pending on node 4
  Call(1, "small");
  router_.Pump(actor_);
  EXPECT_EQ(routes_asked_, 0);
  EXPECT_EQ(route_, (std::vector<std::string>{"node:1"}));
}

TEST_F(RouterLaneTest, CallsOfABrokenLaneFailWithTheActorsDeathReason) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});
  Alive();
  TaskID c1 = Call(1, "small");
  router_.Pump(actor_);
  router_.OnLaneBroken(actor_, {c1}, "connection reset");
  EXPECT_TRUE(failed_.empty()) << "whether it ran is the actor's fate";
  ActorInfo dead;
  dead.actor_id = actor_;
  dead.state = State::kDead;
  dead.death_reason = "its process exited (exit code 1)";
  router_.OnActorUpdate(dead);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].first, c1);
  EXPECT_EQ(failed_[0].second, "its process exited (exit code 1)");
  EXPECT_GE(lane_closes_, 1);
  for (auto& t : timers_) t();  // the limbo timer finds nothing left
  EXPECT_EQ(failed_.size(), 1u);
}

TEST_F(RouterLaneTest, CallsOfABrokenLaneToALiveActorFailAfterTheLimbo) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});
  Alive();
  TaskID c1 = Call(1, "small");
  router_.Pump(actor_);
  router_.OnLaneBroken(actor_, {c1}, "connection reset");
  ASSERT_EQ(timers_.size(), 1u);
  timers_[0]();
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_NE(failed_[0].second.find("may or may not have run"), std::string::npos) << failed_[0].second;
}

TEST_F(RouterLaneTest, CallsAfterKillGoTheKillsWayAndTheLaneCloses) {
  router_.OnCreationPlaced(actor_, 4, {}, {}, protocol::TaskSpec{});
  Alive();
  Call(1, "small");
  router_.Pump(actor_);
  EXPECT_EQ(route_, (std::vector<std::string>{"lane:1"}));
  router_.Kill(actor_, true, "killed");
  EXPECT_EQ(lane_closes_, 1) << "kill closes the lane: later calls must not overtake the kill";
}

// ----------------------------------------------------------------------------- loop helper

class LoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    loop_.AtEndOfIteration([this] {
      if (done_ && done_()) loop_.Stop();
    });
  }
  bool RunUntil(std::function<bool()> done, std::chrono::milliseconds timeout = 10s) {
    if (done()) return true;
    done_ = std::move(done);
    bool timed_out = false;
    auto alive = std::make_shared<bool>(true);
    loop_.RunAfter(timeout, [this, &timed_out, alive] {
      if (!*alive) return;
      timed_out = true;
      loop_.Stop();
    });
    // Timers run after the end-of-iteration check: a ticker makes one more iteration follow.
    auto tick = std::make_shared<std::function<void()>>();
    *tick = [this, alive, tick] {
      if (*alive) loop_.RunAfter(5ms, *tick);
    };
    loop_.RunAfter(5ms, *tick);
    loop_.Run();
    *alive = false;
    done_ = nullptr;
    return !timed_out;
  }
  static void Pair(int* a, int* b) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    *a = fds[0];
    *b = fds[1];
  }
  static bool Closed(int fd) {  // the other end closed
    char c;
    for (int i = 0; i < 200; ++i) {
      ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN) return true;
      usleep(5000);
    }
    return false;
  }
  net::EventLoop loop_;
  std::function<bool()> done_;
};

// ----------------------------------------------------------------------------- acceptor

TEST_F(LoopTest, AcceptorReadsAHelloInPiecesAndHandsTheSocketOver) {
  ObjectID actor = ObjectID::Make(5, 6, 0);
  std::vector<protocol::LaneHello> seen;
  LaneAcceptor acceptor(&loop_, [&](const protocol::LaneHello& h, int fd) -> Result<uint64_t> {
    seen.push_back(h);
    EXPECT_GE(fd, 0);
    return uint64_t{42};
  });
  int node_end, caller_end;
  Pair(&node_end, &caller_end);
  acceptor.OnLaneChannel(node_end, "test");
  std::string hello = protocol::LaneHello{actor, 3}.Encode();
  ASSERT_EQ(::send(caller_end, hello.data(), 10, 0), 10);
  loop_.RunAfter(20ms, [&] { ASSERT_EQ(::send(caller_end, hello.data() + 10, hello.size() - 10, 0), 14); });
  ASSERT_TRUE(RunUntil([&] { return !seen.empty(); }));
  EXPECT_EQ(seen[0].actor_id, actor);
  EXPECT_EQ(seen[0].caller_node, 3u);
  EXPECT_TRUE(acceptor.Attached(42, 3));
  EXPECT_FALSE(acceptor.Attached(42, 4));
  EXPECT_EQ(acceptor.stats().attached, 1u);
  EXPECT_EQ(acceptor.pending(), 0u);
  acceptor.ForgetWorker(42);
  EXPECT_FALSE(acceptor.Attached(42, 3));
  ::close(caller_end);
}

TEST_F(LoopTest, AcceptorClosesBadHellosSilentOnesAndRefusals) {
  int attached = 0;
  LaneAcceptor acceptor(
      &loop_, [&](const protocol::LaneHello&, int) -> Result<uint64_t> {
        ++attached;
        return Status::NotFound("no such actor here");
      },
      50ms);
  int bad_node, bad_caller, silent_node, silent_caller, refused_node, refused_caller;
  Pair(&bad_node, &bad_caller);
  Pair(&silent_node, &silent_caller);
  Pair(&refused_node, &refused_caller);
  acceptor.OnLaneChannel(bad_node, "bad");
  acceptor.OnLaneChannel(silent_node, "silent");
  acceptor.OnLaneChannel(refused_node, "refused");
  std::string garbage(protocol::LaneHello::kSize, 'x');
  ASSERT_EQ(::send(bad_caller, garbage.data(), garbage.size(), 0), static_cast<ssize_t>(garbage.size()));
  std::string hello = protocol::LaneHello{ObjectID::Make(5, 6, 0), 3}.Encode();
  ASSERT_EQ(::send(refused_caller, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
  ASSERT_TRUE(RunUntil([&] { return acceptor.pending() == 0; })) << acceptor.pending() << " pending, " << attached << " attached, " << acceptor.stats().refused << " refused";
  EXPECT_EQ(attached, 1) << "only the well-formed hello reached the actor lookup";
  EXPECT_EQ(acceptor.stats().refused, 3u);
  EXPECT_EQ(acceptor.stats().attached, 0u);
  EXPECT_TRUE(Closed(bad_caller));
  EXPECT_TRUE(Closed(silent_caller));
  EXPECT_TRUE(Closed(refused_caller));
  for (int fd : {bad_caller, silent_caller, refused_caller}) ::close(fd);
}

// ----------------------------------------------------------------------------- caller's lanes

struct FakeWorker {  // the far end of a lane, as a worker would speak it
  int fd;
  std::string Read(size_t n) {
    std::string out;
    for (int i = 0; i < 400 && out.size() < n; ++i) {
      char buf[4096];
      ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
      if (r > 0) out.append(buf, static_cast<size_t>(r));
      else usleep(5000);
    }
    return out;
  }
  template <typename M>
  void Write(protocol::MessageType type, const M& msg) {
    std::string frame;
    protocol::AppendMessage(&frame, type, msg);
    ASSERT_EQ(::send(fd, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  }
};

TEST_F(LoopTest, CallerLaneOpensCarriesCallsAndClosesOnAnAnswerForACallNotSent) {
  ObjectID actor = ObjectID::Make((1ull << 32) | 1, 1, 0);
  int mine = -1, theirs = -1;
  Pair(&mine, &theirs);
  std::vector<ObjectID> changed;
  std::vector<TaskID> done, broken;
  ActorLanes lanes(&loop_, 1,
                   ActorLanes::Callbacks{[&](uint32_t node, std::function<void(Result<int>)> cb) {
                                           EXPECT_EQ(node, 2u);
                                           cb(mine);
                                         },
                                         [&](const ObjectID& a) { changed.push_back(a); },
                                         [&](protocol::TaskDone d) { done.push_back(d.task_id); },
                                         [&](const ObjectID&, std::vector<TaskID> ids, const Status&) {
                                           broken.insert(broken.end(), ids.begin(), ids.end());
                                         }});
  EXPECT_FALSE(lanes.Ready(actor, 2)) << "opening";
  EXPECT_FALSE(lanes.Ready(actor, 1)) << "never a lane to this node itself";
  FakeWorker worker{theirs};
  RunUntil([] { return false; }, 30ms);  // the hello goes out
  auto hello = protocol::LaneHello::Decode(worker.Read(protocol::LaneHello::kSize));
  ASSERT_TRUE(hello.ok()) << hello.status().message();
  EXPECT_EQ(hello->actor_id, actor);
  EXPECT_EQ(hello->caller_node, 1u);
  worker.Write(protocol::MessageType::kLaneReady, protocol::LaneReady{actor, 99});
  ASSERT_TRUE(RunUntil([&] { return !changed.empty(); }));
  EXPECT_TRUE(lanes.Ready(actor, 2));
  protocol::LaneCall call;
  call.call.spec.task_id = ObjectID::Make(kCaller, 1, 0);
  call.call.spec.actor_id = actor;
  call.call.spec.kind = protocol::TaskKind::kActorMethod;
  call.ticket = std::string(16, 't');
  ASSERT_TRUE(lanes.Send(call));
  EXPECT_EQ(lanes.InFlight(actor), 1u);
  RunUntil([] { return false; }, 30ms);
  std::string header = worker.Read(protocol::kFrameHeaderSize);
  ASSERT_EQ(header.size(), protocol::kFrameHeaderSize);
  protocol::TaskDone answer;
  answer.task_id = call.call.spec.task_id;
  answer.returns.push_back(protocol::ObjectValue{});
  worker.Write(protocol::MessageType::kTaskDone, answer);
  ASSERT_TRUE(RunUntil([&] { return !done.empty(); }));
  EXPECT_EQ(done[0], answer.task_id);
  EXPECT_EQ(lanes.InFlight(actor), 0u);
  // A second call, then an answer for a call the lane never carried: the lane closes, and the
  // call in flight is reported broken for the router to settle.
  call.call.spec.task_id = ObjectID::Make(kCaller, 2, 0);
  ASSERT_TRUE(lanes.Send(call));
  answer.task_id = ObjectID::Make(kCaller, 77, 0);
  worker.Write(protocol::MessageType::kTaskDone, answer);
  ASSERT_TRUE(RunUntil([&] { return !broken.empty(); }));
  EXPECT_NE(std::find(broken.begin(), broken.end(), call.call.spec.task_id), broken.end());
  EXPECT_FALSE(lanes.Ready(actor, 2)) << "a lane that broke is not opened again to that node";
  EXPECT_EQ(lanes.stats().broken, 1u);
  ::close(theirs);
}

TEST_F(LoopTest, CallerLaneThatClosesBeforeLaneReadyIsRefusedForGood) {
  ObjectID actor = ObjectID::Make((1ull << 32) | 1, 1, 0);
  int mine = -1, theirs = -1;
  Pair(&mine, &theirs);
  int connects = 0;
  std::vector<ObjectID> changed;
  ActorLanes lanes(&loop_, 1,
                   ActorLanes::Callbacks{[&](uint32_t, std::function<void(Result<int>)> cb) {
                                           ++connects;
                                           cb(mine);
                                         },
                                         [&](const ObjectID& a) { changed.push_back(a); },
                                         [](protocol::TaskDone) {}, [](const ObjectID&, std::vector<TaskID>, const Status&) {}});
  EXPECT_FALSE(lanes.Ready(actor, 2));
  ::close(theirs);  // the actor's node turned it away
  ASSERT_TRUE(RunUntil([&] { return !changed.empty(); }));
  EXPECT_FALSE(lanes.Ready(actor, 2));
  EXPECT_EQ(connects, 1);
  EXPECT_EQ(lanes.stats().refused, 1u);
}

TEST_F(LoopTest, CallerLanesAreBoundedInNumber) {
  int connects = 0;
  std::vector<std::function<void(Result<int>)>> pending;
  ActorLanes lanes(&loop_, 1,
                   ActorLanes::Callbacks{[&](uint32_t, std::function<void(Result<int>)> cb) {
                                           ++connects;
                                           pending.push_back(std::move(cb));
                                         },
                                         [](const ObjectID&) {}, [](protocol::TaskDone) {},
                                         [](const ObjectID&, std::vector<TaskID>, const Status&) {}});
  for (uint32_t i = 1; i <= ActorLanes::kMaxLanes + 10; ++i) EXPECT_FALSE(lanes.Ready(ObjectID::Make(9, i, 0), 2));
  EXPECT_EQ(connects, static_cast<int>(ActorLanes::kMaxLanes)) << "one socket per lane, and no more";
  pending[0](Status::IOError("refused"));  // one fails: room for another
  EXPECT_FALSE(lanes.Ready(ObjectID::Make(9, 9999, 0), 2));
  EXPECT_EQ(connects, static_cast<int>(ActorLanes::kMaxLanes) + 1);
  for (size_t i = 1; i < pending.size(); ++i) pending[i](Status::IOError("refused"));
}

// ----------------------------------------------------------------------------- worker's lanes

TEST(WorkerLanesTest, AttachNeedsItsSocketThenAnswersLaneReadyAndReadsCalls) {
  WorkerLanes lanes;
  ObjectID actor = ObjectID::Make(5, 6, 0);
  EXPECT_FALSE(lanes.Attach(protocol::LaneAttach{actor, 3}, 1, 5).ok()) << "no socket came with it";
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  lanes.AddReceivedFd(fds[0]);
  ASSERT_TRUE(lanes.Attach(protocol::LaneAttach{actor, 3}, 1234, 5).ok());
  EXPECT_EQ(lanes.size(), 1u);
  FakeWorker caller{fds[1]};  // here the far end is the caller's node
  std::string header = caller.Read(protocol::kFrameHeaderSize);
  ASSERT_EQ(header.size(), protocol::kFrameHeaderSize);
  protocol::LaneCall call;
  call.call.spec.task_id = ObjectID::Make(kCaller, 1, 0);
  call.ticket = std::string(16, 't');
  caller.Write(protocol::MessageType::kLaneCall, call);
  pollfd polls[WorkerLanes::kMaxLanes];
  ASSERT_EQ(lanes.PollFds(polls), 1u);
  ASSERT_EQ(::poll(polls, 1, 2000), 1);
  std::vector<uint16_t> types;
  std::vector<uint64_t> closed;
  lanes.Read(polls, 1, [&](uint64_t, const protocol::Frame& f) { types.push_back(f.type); },
             [&](uint64_t lane) { closed.push_back(lane); });
  EXPECT_EQ(types, (std::vector<uint16_t>{static_cast<uint16_t>(protocol::MessageType::kLaneCall)}));
  // Garbage from the caller's end closes the lane.
  ASSERT_EQ(::send(fds[1], "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 0), 8);
  ASSERT_EQ(lanes.PollFds(polls), 1u);
  ASSERT_EQ(::poll(polls, 1, 2000), 1);
  lanes.Read(polls, 1, [&](uint64_t, const protocol::Frame& f) { types.push_back(f.type); },
             [&](uint64_t lane) { closed.push_back(lane); });
  EXPECT_EQ(closed.size(), 1u);
  EXPECT_EQ(lanes.size(), 0u);
  EXPECT_FALSE(lanes.Write(1, protocol::MessageType::kTaskDone, protocol::TaskDone{}).ok());
  ::close(fds[1]);
}

}  // namespace
}  // namespace quanta
