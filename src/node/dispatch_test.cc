// The node's two dispatchers refuse what a sender may not send before any component sees it
// (the components are absent here: a refused frame must never reach one).
#include <gtest/gtest.h>

#include "node/client_dispatch.h"
#include "node/cluster_view.h"
#include "node/peer_dispatch.h"
#include "protocol/peer_messages.h"

namespace quanta {
namespace {

using protocol::MessageType;

template <typename M>
std::string Body(const M& msg) {
  std::string out;
  protocol::Writer w(&out);
  msg.Encode(w);
  return out;
}

ClientDispatch NoComponents() {
  return ClientDispatch(ClientDispatch::Components{}, ClientDispatch::Identity{"n", "/tmp/s", 100},
                        [](uint64_t) { return protocol::NodeStats{}; },
                        [] { return std::vector<protocol::NodeInfo>{}; });
}

TEST(ClientDispatchTest, TheFirstFrameMustBeHello) {
  ClientDispatch d = NoComponents();
  LocalClient c;
  c.id = 7;
  std::string body = Body(protocol::IdList{});
  Status st = d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(MessageType::kSubscribe), body});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Hello"), std::string::npos) << st.message();
}

TEST(ClientDispatchTest, AMalformedHelloIsRefused) {
  ClientDispatch d = NoComponents();
  LocalClient c;
  std::string junk = "\x01";
  EXPECT_FALSE(d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(MessageType::kHello), junk}).ok());
  EXPECT_FALSE(c.said_hello);
}

TEST(ClientDispatchTest, ObserversMayOnlyRead) {
  EXPECT_TRUE(ClientDispatch::ObserverMay(MessageType::kGetClusterInfo));
  EXPECT_TRUE(ClientDispatch::ObserverMay(MessageType::kGetNodeState));
  EXPECT_FALSE(ClientDispatch::ObserverMay(MessageType::kSubmitTask));
  EXPECT_FALSE(ClientDispatch::ObserverMay(MessageType::kPutObject));
  ClientDispatch d = NoComponents();
  LocalClient c;
  c.said_hello = true;
  c.role = protocol::ClientRole::kObserver;
  Status st = d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(MessageType::kSubmitTask), ""});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("observer"), std::string::npos) << st.message();
}

TEST(ClientDispatchTest, OnlyWorkersReportTasks) {
  ClientDispatch d = NoComponents();
  LocalClient c;
  c.said_hello = true;  // a driver
  for (auto type : {MessageType::kTaskDone, MessageType::kTasksReturned, MessageType::kWorkerBlocked}) {
    EXPECT_FALSE(d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(type), ""}).ok());
  }
}

TEST(ClientDispatchTest, ATaskIdTheClientDidNotMintIsRefused) {
  ClientDispatch d = NoComponents();
  LocalClient c;
  c.id = 5;
  c.said_hello = true;
  protocol::TaskSpec spec;
  spec.task_id = ObjectID::Make(/*creator=*/6, 1, 0);
  std::string body = Body(spec);
  Status st = d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(MessageType::kSubmitTask), body});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("minted"), std::string::npos) << st.message();
}

TEST(ClientDispatchTest, UnknownTypesAreRefused) {
  ClientDispatch d = NoComponents();
  LocalClient c;
  c.said_hello = true;
  EXPECT_FALSE(d.Dispatch(c, protocol::Frame{9999, ""}).ok());
  // A peer-only message from a local client.
  EXPECT_FALSE(d.Dispatch(c, protocol::Frame{static_cast<uint16_t>(MessageType::kForwardTask), ""}).ok());
}

TEST(PeerDispatchTest, RefusesWhatAPeerMayNotSend) {
  ClusterView view([](const protocol::NodeInfo&) {}, [](const protocol::NodeInfo&) {});
  view.set_local_index(2);
  PeerDispatch d(PeerDispatch::Components{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, &view, nullptr});
  // A client's message, an unknown type, and a frame that does not decode.
  EXPECT_FALSE(d.Dispatch(1, protocol::Frame{static_cast<uint16_t>(MessageType::kSubmitTask), ""}).ok());
  EXPECT_FALSE(d.Dispatch(1, protocol::Frame{9999, ""}).ok());
  EXPECT_FALSE(d.Dispatch(1, protocol::Frame{static_cast<uint16_t>(MessageType::kPullObject), "\x01"}).ok());
  // Worker output for a driver of node 3 sent to node 2.
  protocol::ForwardedLogLines lines;
  lines.job_id = (uint64_t{3} << 32) | 1;
  lines.lines.text = "hello\n";
  std::string body = Body(lines);
  Status st = d.Dispatch(1, protocol::Frame{static_cast<uint16_t>(MessageType::kForwardedLogLines), body});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("another node"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace quanta
