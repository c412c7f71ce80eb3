// Unit tests for protocol/messages.h and protocol/wire.h: every message type round-trips
// through a frame; every truncation, trailing byte, forged count or out-of-range enum is
// rejected with a Status (never a crash, never a huge allocation).
#include "protocol/cluster_messages.h"
#include "protocol/messages.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

// ------------------------------------------------------------------ allocation tracking
// Replacing the global allocation functions lets the forged-count tests check that decoding
// never asks for a large block, whatever count a hostile peer writes.
namespace {
std::atomic<bool> g_track_alloc{false};
std::atomic<size_t> g_max_alloc{0};

void NoteAlloc(size_t n) {
  if (!g_track_alloc.load(std::memory_order_relaxed)) return;
  size_t cur = g_max_alloc.load(std::memory_order_relaxed);
  while (n > cur && !g_max_alloc.compare_exchange_weak(cur, n)) {
  }
}
}  // namespace

void* operator new(size_t n) {
  NoteAlloc(n);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
// noinline: once inlined, GCC sees free() on a pointer from operator new and warns.
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace quanta::protocol {

// Field-by-field equality, found by gtest through argument-dependent lookup.
bool operator==(const ObjectValue& a, const ObjectValue& b) {
  return a.kind == b.kind && a.data == b.data && a.nested_refs == b.nested_refs;
}
bool operator==(const ActorOptions& a, const ActorOptions& b) {
  return a.max_concurrency == b.max_concurrency && a.max_restarts == b.max_restarts &&
         a.detached == b.detached && a.is_async == b.is_async && a.class_name == b.class_name &&
         a.lifetime_resources == b.lifetime_resources && a.concurrency_groups == b.concurrency_groups;
}
// Fields a kind does not carry on the wire (actor_id for normal tasks, method for non-method
// calls, actor options for non-creation tasks) are not compared.
bool operator==(const TaskSpec& a, const TaskSpec& b) {
  if (a.kind != b.kind) return false;
  if (a.kind != TaskKind::kNormal && a.actor_id != b.actor_id) return false;
  if (a.kind == TaskKind::kActorMethod && (a.method != b.method || a.concurrency_group != b.concurrency_group)) {
    return false;
  }
  if (a.kind == TaskKind::kActorCreation && !(a.actor == b.actor)) return false;
  return a.task_id == b.task_id && a.job_id == b.job_id && a.function_id == b.function_id &&
         a.name == b.name && a.args_blob == b.args_blob && a.arg_refs == b.arg_refs &&
         a.nested_refs == b.nested_refs && a.num_returns == b.num_returns &&
         a.resources == b.resources && a.max_retries == b.max_retries &&
         a.retry_exceptions == b.retry_exceptions && a.retry_exception_types == b.retry_exception_types &&
         a.timeout_ms == b.timeout_ms && a.generator == b.generator &&
         a.generator_backpressure == b.generator_backpressure && a.priority == b.priority &&
         a.runtime_env_hash == b.runtime_env_hash && a.runtime_env == b.runtime_env;
}
bool operator==(const NodeInfo& a, const NodeInfo& b) {
  return a.node_id == b.node_id && a.node_index == b.node_index && a.address == b.address && a.port == b.port &&
         a.socket_path == b.socket_path && a.session_dir == b.session_dir && a.alive == b.alive &&
         a.total == b.total && a.available == b.available && a.labels == b.labels &&
         a.start_time_ms == b.start_time_ms && a.incarnation == b.incarnation && a.flags == b.flags &&
         a.death_reason == b.death_reason;
}

namespace {

ObjectID Id(uint64_t creator, uint32_t seq, uint32_t index) {
  return ObjectID::Make(creator, seq, index);
}

std::string Bin(size_t n, unsigned char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31);
  return s;
}

template <typename M>
std::string EncodeBody(const M& m) {
  std::string s;
  Writer w(&s);
  m.Encode(w);
  return s;
}

// Encodes `msg` as a frame, decodes the frame and its body, and checks everything a decoder
// must reject around that body: every proper prefix, and any trailing bytes. Returns the
// decoded message for field comparisons.
template <typename M>
M RoundTrip(MessageType type, const M& msg) {
  std::string wire = "junk-before";  // AppendMessage appends; the header is patched in place
  size_t start = wire.size();
  AppendMessage(&wire, type, msg);
  std::string body = EncodeBody(msg);
  EXPECT_EQ(wire.size() - start, kFrameHeaderSize + body.size());

  FrameDecoder dec;
  dec.Append(std::string_view(wire).substr(start));
  Frame frame;
  auto r = dec.Next(&frame);
  EXPECT_TRUE(r.ok() && r.value()) << MessageTypeName(type);
  M out;
  if (!r.ok() || !r.value()) return out;
  EXPECT_EQ(frame.type, static_cast<uint16_t>(type));
  EXPECT_EQ(frame.body, body);
  Status st = DecodeMessage(frame.body, &out);
  EXPECT_TRUE(st.ok()) << MessageTypeName(type) << ": " << st.ToString();
  // The encoding is canonical: re-encoding the decoded value gives the same bytes.
  EXPECT_EQ(EncodeBody(out), body) << MessageTypeName(type);

  // Every truncation is an error (never a crash: run under ASan to check bounds too).
  for (size_t n = 0; n < body.size(); ++n) {
    M t;
    Status ts = DecodeMessage(std::string_view(body).substr(0, n), &t);
    EXPECT_FALSE(ts.ok()) << MessageTypeName(type) << " truncated to " << n << " of "
                          << body.size() << " bytes decoded OK";
    if (!ts.ok()) {
      EXPECT_EQ(ts.code(), StatusCode::kProtocolError);
    }
  }
  // Trailing bytes are an error.
  for (std::string extra : {std::string(1, '\0'), std::string("x"), std::string(17, '\xff')}) {
    M t;
    Status ts = DecodeMessage(body + extra, &t);
    EXPECT_FALSE(ts.ok()) << MessageTypeName(type) << " with " << extra.size()
                          << " trailing bytes decoded OK";
    if (!ts.ok()) {
      EXPECT_EQ(ts.code(), StatusCode::kProtocolError);
    }
  }
  return out;
}

ObjectValue SampleValue(ObjectKind kind = ObjectKind::kPickled) {
  ObjectValue v;
  v.kind = kind;
  // A stored object's data is its location, which must be exactly StoredLocation::kEncodedSize.
  v.data = kind == ObjectKind::kStored ? StoredLocation{4096, 1 << 20, true}.Encode() : Bin(40, 7);
  v.nested_refs = {Id(1, 2, 3), Id(4, 5, ObjectID::kPutIndex)};
  return v;
}

TaskSpec SampleSpec() {
  TaskSpec s;
  s.task_id = Id(0x1122334455667788ull, 42, 0);
  s.job_id = 0xDEADBEEFCAFEull;
  s.function_id = "fn-hash-0123";
  s.name = "module.f";
  s.args_blob = Bin(30, 3);
  s.arg_refs = {Id(9, 1, 1), Id(9, 2, 1), Id(9, 2, 1)};
  s.nested_refs = {Id(8, 8, 8)};
  s.num_returns = 3;
  s.resources = {{"CPU", 5000}, {"GPU", 2 * kResourceUnit}, {"custom", 1}};
  s.max_retries = -1;
  s.retry_exceptions = true;
  s.retry_exception_types = "builtins.ValueError\n__main__.Flaky";
  s.timeout_ms = 1500;
  s.priority = -7;
  return s;
}

NodeInfo SampleNode(int i) {
  NodeInfo n;
  n.node_id = "node-" + std::to_string(i);
  n.node_index = static_cast<uint32_t>(i + 1);
  n.address = "10.0.0." + std::to_string(i + 1);
  n.port = 40000 + static_cast<uint32_t>(i);
  n.socket_path = "/tmp/quanta-0/sockets/node" + std::to_string(i) + ".sock";
  n.session_dir = "/tmp/quanta-0/session_" + std::to_string(i);
  n.alive = i % 2 == 0;
  n.total = {{"CPU", 4 * kResourceUnit}, {"memory", 1000}};
  n.available = {{"CPU", 15000}};
  n.labels = {{"zone", "a"}, {"gpu", std::to_string(i)}};
  n.start_time_ms = 1700000000000ull + static_cast<uint64_t>(i);
  n.incarnation = static_cast<uint64_t>(i) * 7;
  n.flags = static_cast<uint8_t>(i == 0 ? NodeInfo::kHead : 0);
  n.death_reason = n.alive ? "" : "its connection closed";
  return n;
}

// ------------------------------------------------------------------ round trips, every type

TEST(Messages, Hello) {
  for (ClientRole role : {ClientRole::kDriver, ClientRole::kWorker}) {
    Hello m;
    m.role = role;
    m.worker_token = "0123456789abcdef0123456789abcdef";
    m.pid = 123456;
    m.log_to_driver = role == ClientRole::kDriver;
    Hello out = RoundTrip(MessageType::kHello, m);
    EXPECT_EQ(out.role, m.role);
    EXPECT_EQ(out.worker_token, m.worker_token);
    EXPECT_EQ(out.pid, m.pid);
    EXPECT_EQ(out.log_to_driver, m.log_to_driver);
  }
}

TEST(Messages, HelloWireLayout) {
  // The layout documented for hand-written clients (and used by the Python robustness test).
  Hello m;
  m.role = ClientRole::kDriver;
  m.worker_token = "ab";
  m.pid = 0x0A0B0C0D;
  m.log_to_driver = true;
  std::string wire;
  AppendMessage(&wire, MessageType::kHello, m);
  std::string expected = std::string("\x0c\x00\x00\x00\x02\x00\x01\x00", 8) +
                               std::string("\x01\x02\x00\x00\x00" "ab" "\x0d\x0c\x0b\x0a\x01", 12);
  expected[4] = static_cast<char>(kProtocolVersion & 0xFF);  // the header carries the current version
  expected[5] = static_cast<char>(kProtocolVersion >> 8);
  EXPECT_EQ(wire, expected);
}

TEST(Messages, HelloReply) {
  HelloReply m;
  m.client_id = 77;
  m.node_id = "abcdef0123456789";
  m.session_dir = "/tmp/quanta/session_x";
  m.cluster_id = 0xC1057E4ull;
  HelloReply out = RoundTrip(MessageType::kHelloReply, m);
  EXPECT_EQ(out.cluster_id, m.cluster_id);
  EXPECT_EQ(out.client_id, m.client_id);
  EXPECT_EQ(out.node_id, m.node_id);
  EXPECT_EQ(out.session_dir, m.session_dir);
}

TEST(Messages, RegisterFunction) {
  RegisterFunction m{"hash", Bin(100, 1)};
  RegisterFunction out = RoundTrip(MessageType::kRegisterFunction, m);
  EXPECT_EQ(out.function_id, m.function_id);
  EXPECT_EQ(out.payload, m.payload);
}

TEST(Messages, SubmitTask) {
  TaskSpec m = SampleSpec();
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
  EXPECT_EQ(out.ReturnId(2), Id(0x1122334455667788ull, 42, 3));
}

TEST(Messages, StreamingGeneratorTask) {
  TaskSpec m = SampleSpec();
  m.num_returns = 1;
  m.generator = TaskSpec::kStreaming;
  m.generator_backpressure = 7;
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
  EXPECT_EQ(out.ItemId(0), Id(0x1122334455667788ull, 42, 2));  // item k is return index k + 2
  // A generator has exactly one return; an unknown mode is refused.
  m.num_returns = 2;
  TaskSpec bad;
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
  m.num_returns = 1;
  m.generator = 3;
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
}

TEST(Messages, TaskWithRuntimeEnv) {
  TaskSpec m = SampleSpec();
  m.runtime_env_hash = std::string(32, 'a');
  m.runtime_env = R"({"env_vars": {"A": "1"}})";
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
  // Bounded, and never one half without the other.
  TaskSpec bad;
  m.runtime_env_hash = std::string(TaskSpec::kMaxRuntimeEnvHash + 1, 'a');
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
  m.runtime_env_hash = "abc";
  m.runtime_env = std::string(TaskSpec::kMaxRuntimeEnv + 1, 'x');
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
  m.runtime_env.clear();
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
}

TEST(Messages, GeneratorItemAndAck) {
  GeneratorItem m;
  m.task_id = Id(5, 6, 0);
  m.index = 12345;
  m.value = SampleValue(ObjectKind::kStored);
  m.handoff = 99;
  for (MessageType t : {MessageType::kGeneratorItem, MessageType::kGeneratorItemRemote}) {
    GeneratorItem out = RoundTrip(t, m);
    EXPECT_EQ(out.task_id, m.task_id);
    EXPECT_EQ(out.index, m.index);
    EXPECT_EQ(out.value, m.value);
    EXPECT_EQ(out.handoff, 99u);
  }
  m.index = GeneratorItem::kMaxItems;  // item ids use the 32-bit return index
  GeneratorItem bad;
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &bad).ok());
  GeneratorAck a{Id(5, 6, 0), 77};
  for (MessageType t : {MessageType::kGeneratorAck, MessageType::kGeneratorAckRemote}) {
    GeneratorAck out = RoundTrip(t, a);
    EXPECT_EQ(out.task_id, a.task_id);
    EXPECT_EQ(out.consumed, 77u);
  }
}

TEST(Messages, SubmitActorCreationTask) {
  TaskSpec m = SampleSpec();
  m.kind = TaskKind::kActorCreation;
  m.actor_id = m.task_id;
  m.actor.max_concurrency = 8;
  m.actor.max_restarts = -1;
  m.actor.detached = true;
  m.actor.is_async = true;
  m.actor.class_name = "Counter";
  m.actor.lifetime_resources = {{"CPU", 0}, {"GPU", kResourceUnit / 2}};
  m.actor.concurrency_groups = {{"io", 2}, {"compute", 4}};
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
  EXPECT_EQ(out.actor.class_name, "Counter");
  EXPECT_EQ(out.actor.max_concurrency, 8u);
}

TEST(Messages, SubmitActorMethodTask) {
  TaskSpec m = SampleSpec();
  m.kind = TaskKind::kActorMethod;
  m.actor_id = Id(0x42, 7, 0);
  m.method = "increment";
  m.concurrency_group = "io";
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
  EXPECT_EQ(out.method, "increment");
  EXPECT_EQ(out.concurrency_group, "io");
  EXPECT_EQ(out.actor_id, m.actor_id);
}

TEST(Messages, ExtraFieldsOfOtherKindsAreNotEncoded) {
  // A normal task does not carry actor fields, so setting them changes nothing on the wire.
  TaskSpec plain = SampleSpec();
  TaskSpec decorated = plain;
  decorated.actor_id = Id(9, 9, 9);
  decorated.method = "m";
  decorated.actor.class_name = "C";
  EXPECT_EQ(EncodeBody(plain), EncodeBody(decorated));
}

TEST(Messages, SubmitTaskWithEmptyLists) {
  TaskSpec m;
  m.task_id = Id(1, 1, 0);
  m.num_returns = 0;
  m.max_retries = 0;
  TaskSpec out = RoundTrip(MessageType::kSubmitTask, m);
  EXPECT_EQ(out, m);
}

TEST(Messages, PutObject) {
  for (int k = 0; k < static_cast<int>(ObjectKind::kKindCount); ++k) {
    PutObject m{Id(3, 3, ObjectID::kPutIndex), SampleValue(static_cast<ObjectKind>(k))};
    PutObject out = RoundTrip(MessageType::kPutObject, m);
    EXPECT_EQ(out.object_id, m.object_id);
    EXPECT_EQ(out.value, m.value);
    bool is_value = k == static_cast<int>(ObjectKind::kPickled) || k == static_cast<int>(ObjectKind::kStored);
    EXPECT_EQ(out.value.IsError(), !is_value);
  }
}

TEST(Messages, PutObjectEmptyValue) {
  PutObject m;
  m.object_id = Id(3, 4, ObjectID::kPutIndex);
  PutObject out = RoundTrip(MessageType::kPutObject, m);
  EXPECT_EQ(out.value, m.value);
}

TEST(Messages, Subscribe) {
  IdList m;
  for (uint32_t i = 0; i < 20; ++i) m.ids.push_back(Id(i, i * 2, i * 3));
  IdList out = RoundTrip(MessageType::kSubscribe, m);
  EXPECT_EQ(out.ids, m.ids);
  IdList empty_out = RoundTrip(MessageType::kSubscribe, IdList{});
  EXPECT_TRUE(empty_out.ids.empty());
}

TEST(Messages, RefDeltas) {
  RefDeltas m;
  m.deltas = {{Id(1, 1, 1), 1},
              {Id(2, 2, 2), -1},
              {Id(3, 3, 3), std::numeric_limits<int32_t>::max()},
              {Id(4, 4, 4), std::numeric_limits<int32_t>::min()}};
  RefDeltas out = RoundTrip(MessageType::kRefDeltas, m);
  EXPECT_EQ(out.deltas, m.deltas);
}

TEST(Messages, WorkerBlockedAndUnblockedAreEmpty) {
  for (MessageType t : {MessageType::kWorkerBlocked, MessageType::kWorkerUnblocked}) {
    RoundTrip(t, Empty{});
    EXPECT_EQ(EncodeBody(Empty{}), "");
  }
}

TEST(Messages, TaskDone) {
  TaskDone m;
  m.task_id = Id(5, 6, 0);
  m.returns = {SampleValue(), SampleValue(ObjectKind::kTaskError), ObjectValue{}};
  TaskDone out = RoundTrip(MessageType::kTaskDone, m);
  EXPECT_EQ(out.task_id, m.task_id);
  EXPECT_EQ(out.returns, m.returns);
  EXPECT_FALSE(out.retryable);
  m.retryable = true;
  EXPECT_TRUE(RoundTrip(MessageType::kTaskDone, m).retryable);
}

TEST(Messages, CancelTask) {
  for (int bits = 0; bits < 4; ++bits) {
    CancelTask m{Id(7, 7, 1), (bits & 1) != 0, (bits & 2) != 0};
    CancelTask out = RoundTrip(MessageType::kCancelTask, m);
    EXPECT_EQ(out.object_id, m.object_id);
    EXPECT_EQ(out.force, m.force);
    EXPECT_EQ(out.recursive, m.recursive);
  }
}

TEST(Messages, KillActor) {
  for (bool no_restart : {false, true}) {
    KillActor m{Id(4, 4, 0), no_restart};
    KillActor out = RoundTrip(MessageType::kKillActor, m);
    EXPECT_EQ(out.actor_id, m.actor_id);
    EXPECT_EQ(out.no_restart, m.no_restart);
  }
}

TEST(Messages, ActorName) {
  for (ActorNameOp op : {ActorNameOp::kRegister, ActorNameOp::kLookup, ActorNameOp::kUnregister}) {
    ActorName m{31337, op, "counter", "namespace-x", Id(5, 5, 0), Bin(50, 4)};
    ActorName out = RoundTrip(MessageType::kActorName, m);
    EXPECT_EQ(out.request_id, m.request_id);
    EXPECT_EQ(out.op, m.op);
    EXPECT_EQ(out.name, m.name);
    EXPECT_EQ(out.name_space, m.name_space);
    EXPECT_EQ(out.actor_id, m.actor_id);
    EXPECT_EQ(out.handle_blob, m.handle_blob);
  }
}

TEST(Messages, ActorNameReply) {
  ActorNameReply m{77, true, Bin(20, 5), "no error"};
  ActorNameReply out = RoundTrip(MessageType::kActorNameReply, m);
  EXPECT_EQ(out.request_id, m.request_id);
  EXPECT_EQ(out.ok, m.ok);
  EXPECT_EQ(out.handle_blob, m.handle_blob);
  EXPECT_EQ(out.error, m.error);
}

TEST(Messages, GetClusterInfo) {
  RequestId out = RoundTrip(MessageType::kGetClusterInfo, RequestId{0x123456789ull});
  EXPECT_EQ(out.request_id, 0x123456789ull);
}

TEST(Messages, ObjectReady) {
  ObjectReady m{Id(1, 2, 1), SampleValue(ObjectKind::kObjectLost)};
  ObjectReady out = RoundTrip(MessageType::kObjectReady, m);
  EXPECT_EQ(out.object_id, m.object_id);
  EXPECT_EQ(out.value, m.value);
}

TEST(Messages, ExecuteTask) {
  ExecuteTask m;
  m.spec = SampleSpec();
  m.function_payload = Bin(64, 9);
  m.args = {SampleValue(), SampleValue(ObjectKind::kCancelled), SampleValue()};
  m.gpus = {{"0", kResourceUnit}, {"3", kResourceUnit / 2}};
  ExecuteTask out = RoundTrip(MessageType::kExecuteTask, m);
  EXPECT_EQ(out.gpus, m.gpus);
  EXPECT_EQ(out.spec, m.spec);
  EXPECT_EQ(out.function_payload, m.function_payload);
  EXPECT_EQ(out.args, m.args);
}

TEST(Messages, TaskPriorityOutOfRangeIsRejected) {
  for (int32_t p : {TaskSpec::kMaxPriority + 1, -TaskSpec::kMaxPriority - 1}) {
    TaskSpec m = SampleSpec();
    m.priority = p;
    TaskSpec out;
    EXPECT_FALSE(DecodeMessage(EncodeBody(m), &out).ok()) << p;
  }
  TaskSpec m = SampleSpec();
  m.priority = TaskSpec::kMaxPriority;
  EXPECT_EQ(RoundTrip(MessageType::kSubmitTask, m).priority, TaskSpec::kMaxPriority);
}

TEST(Messages, LogLines) {
  LogLines m{4321, "f", true, "line one\nline two\n", "10.0.0.2"};
  LogLines out = RoundTrip(MessageType::kLogLines, m);
  EXPECT_EQ(out.origin, m.origin);
  EXPECT_EQ(out.pid, m.pid);
  EXPECT_EQ(out.task_name, m.task_name);
  EXPECT_EQ(out.is_stderr, m.is_stderr);
  EXPECT_EQ(out.text, m.text);
}

TEST(Messages, Warning) {
  Warning out = RoundTrip(MessageType::kWarning, Warning{"a task needs {GPU: 1}"});
  EXPECT_EQ(out.text, "a task needs {GPU: 1}");
}

TEST(Messages, ClusterInfo) {
  ClusterInfo m;
  m.request_id = 99;
  m.nodes = {SampleNode(0), SampleNode(1), NodeInfo{}};
  ClusterInfo out = RoundTrip(MessageType::kClusterInfo, m);
  EXPECT_EQ(out.request_id, m.request_id);
  EXPECT_EQ(out.nodes, m.nodes);
}

TEST(Messages, RegisterNode) {
  RegisterNode m{SampleNode(2)};
  RegisterNode out = RoundTrip(MessageType::kRegisterNode, m);
  EXPECT_EQ(out.node, m.node);
}

TEST(Messages, ResourceUpdate) {
  ResourceUpdate m{9, {{"CPU", 0}, {"GPU", 12345}}, {{"CPU", 40000}, {"GPU", 20000}}};
  ResourceUpdate out = RoundTrip(MessageType::kResourceUpdate, m);
  EXPECT_EQ(out.node_index, m.node_index);
  EXPECT_EQ(out.available, m.available);
  EXPECT_EQ(out.total, m.total);
}

TEST(Messages, RegisterNodeReply) {
  RegisterNodeReply m;
  m.ok = true;
  m.node_index = 7;
  m.cluster_id = 0xC1057E4ull;
  m.incarnation = 3;
  m.heartbeat_interval_ms = 250;
  m.heartbeat_timeout_ms = 2000;
  m.reconnect_timeout_ms = 60000;
  m.error = "";
  RegisterNodeReply out = RoundTrip(MessageType::kRegisterNodeReply, m);
  EXPECT_EQ(out.reconnect_timeout_ms, 60000u);
  EXPECT_EQ(out.ok, m.ok);
  EXPECT_EQ(out.node_index, m.node_index);
  EXPECT_EQ(out.cluster_id, m.cluster_id);
  EXPECT_EQ(out.incarnation, m.incarnation);
  EXPECT_EQ(out.heartbeat_interval_ms, m.heartbeat_interval_ms);
  EXPECT_EQ(out.heartbeat_timeout_ms, m.heartbeat_timeout_ms);
  m.ok = false;
  m.error = "the control service does not know node x";
  out = RoundTrip(MessageType::kRegisterNodeReply, m);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.error, m.error);
}

TEST(Messages, HeartbeatNodeTableResourceViewDrain) {
  Heartbeat hb = RoundTrip(MessageType::kHeartbeat, Heartbeat{4, 99});
  EXPECT_EQ(hb.node_index, 4u);
  EXPECT_EQ(hb.sequence, 99u);
  NodeTable table{true, {SampleNode(0), SampleNode(1)}};
  NodeTable t = RoundTrip(MessageType::kNodeTable, table);
  EXPECT_TRUE(t.full);
  EXPECT_EQ(t.nodes, table.nodes);
  ResourceView view;
  view.nodes = {{1, {{"CPU", 10000}}, {{"CPU", 40000}}}, {5, {}, {}}};
  ResourceView v = RoundTrip(MessageType::kResourceView, view);
  EXPECT_EQ(v.nodes, view.nodes);
  DrainNode d = RoundTrip(MessageType::kDrainNode, DrainNode{"no heartbeat for 3000 ms"});
  EXPECT_EQ(d.reason, "no heartbeat for 3000 ms");
}

TEST(Messages, PlacementGroups) {
  PlacementGroupSpec spec;
  spec.id = ObjectID::Make(uint64_t{1} << 32 | 3, 7, 0);
  spec.name = "pg";
  spec.name_space = "ns";
  spec.strategy = PlacementStrategy::kStrictSpread;
  spec.bundles = {{{"CPU", 10000}}, {{"CPU", 20000}, {"GPU", 10000}}};
  spec.detached = true;
  spec.job_id = 42;
  PlacementGroups m;
  m.request_id = 5;
  PlacementGroupInfo info;
  info.spec = spec;
  info.state = PlacementGroupInfo::State::kCreated;
  info.bundle_nodes = {2, 3};
  info.message = "created";
  m.groups = {info};
  PlacementGroups out = RoundTrip(MessageType::kPlacementGroups, m);
  ASSERT_EQ(out.groups.size(), 1u);
  EXPECT_EQ(out.groups[0].spec.id, spec.id);
  EXPECT_EQ(out.groups[0].spec.bundles, spec.bundles);
  EXPECT_EQ(out.groups[0].spec.strategy, spec.strategy);
  EXPECT_EQ(out.groups[0].bundle_nodes, info.bundle_nodes);
  BundleReservation r{spec.id, {{0, {{"CPU", 10000}}}, {1, {{"GPU", 5000}}}}};
  BundleReservation r2 = RoundTrip(MessageType::kReserveBundles, r);
  EXPECT_EQ(r2.bundles, r.bundles);
  BundlesReserved b = RoundTrip(MessageType::kBundlesReserved, BundlesReserved{spec.id, false, "no room"});
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(b.error, "no room");
  PlacementGroupSpec empty = spec;
  empty.bundles.clear();
  std::string body;
  Writer w(&body);
  empty.Encode(w);
  PlacementGroupSpec bad;
  EXPECT_FALSE(DecodeMessage(body, &bad).ok()) << "a group needs a bundle";
}

TEST(Messages, TypeNames) {
  EXPECT_STREQ(MessageTypeName(MessageType::kHello), "Hello");
  EXPECT_STREQ(MessageTypeName(MessageType::kSubmitTask), "SubmitTask");
  EXPECT_STREQ(MessageTypeName(MessageType::kResourceUpdate), "ResourceUpdate");
  EXPECT_STREQ(MessageTypeName(MessageType::kKillActor), "KillActor");
  EXPECT_STREQ(MessageTypeName(MessageType::kActorNameReply), "ActorNameReply");
  EXPECT_STREQ(MessageTypeName(static_cast<MessageType>(999)), "Unknown");
  EXPECT_STREQ(MessageTypeName(static_cast<MessageType>(0)), "Unknown");
}

// ------------------------------------------------------------------ invalid field values

TEST(Messages, StoredLocationMustHaveItsExactSize) {
  for (size_t size : {0, 16, 18, 40}) {
    ObjectValue v;
    v.kind = ObjectKind::kStored;
    v.data = Bin(size, 1);
    std::string body = EncodeBody(PutObject{Id(1, 1, 1), v});
    PutObject m;
    EXPECT_FALSE(DecodeMessage(body, &m).ok()) << size;
  }
  auto loc = StoredLocation::Decode(StoredLocation{7, 9, true}.Encode());
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->offset, 7u);
  EXPECT_EQ(loc->size, 9u);
  EXPECT_TRUE(loc->pinned);
}

TEST(Messages, UnknownObjectKindRejected) {
  for (int kind : {static_cast<int>(ObjectKind::kKindCount), static_cast<int>(ObjectKind::kKindCount) + 1, 128, 255}) {
    std::string body = EncodeBody(PutObject{Id(1, 1, 1), SampleValue()});
    body[ObjectID::kSize] = static_cast<char>(kind);  // the kind byte follows the id
    PutObject m;
    Status st = DecodeMessage(body, &m);
    ASSERT_FALSE(st.ok()) << "kind " << kind;
    EXPECT_EQ(st.code(), StatusCode::kProtocolError);
    EXPECT_NE(st.message().find("object kind"), std::string::npos) << st.message();
  }
}

TEST(Messages, UnknownObjectKindInsideTaskDoneRejected) {
  TaskDone m{Id(1, 1, 0), {SampleValue(), SampleValue()}};
  std::string body = EncodeBody(m);
  // Second value starts after id(16) + count(4) + first value.
  size_t second = ObjectID::kSize + 4 + EncodeBody(PutObject{ObjectID(), SampleValue()}).size() -
                  ObjectID::kSize;
  ASSERT_EQ(static_cast<uint8_t>(body[second]), 0);
  body[second] = 42;
  TaskDone out;
  EXPECT_FALSE(DecodeMessage(body, &out).ok());
}

TEST(Messages, UnknownTaskKindRejected) {
  for (int kind : {3, 4, 255}) {
    std::string body = EncodeBody(SampleSpec());
    body[ObjectID::kSize] = static_cast<char>(kind);  // the kind byte follows the task id
    TaskSpec m;
    Status st = DecodeMessage(body, &m);
    EXPECT_FALSE(st.ok()) << "kind " << kind;
    EXPECT_NE(st.message().find("kind"), std::string::npos) << st.message();
  }
}

TEST(Messages, ZeroMaxConcurrencyRejected) {
  TaskSpec m = SampleSpec();
  m.kind = TaskKind::kActorCreation;
  m.actor_id = m.task_id;
  m.actor.max_concurrency = 0;
  TaskSpec out;
  EXPECT_FALSE(DecodeMessage(EncodeBody(m), &out).ok());
}

TEST(Messages, UnknownActorNameOpRejected) {
  ActorName m;
  std::string body = EncodeBody(m);
  body[8] = 3;  // the op byte follows the u64 request id
  ActorName out;
  EXPECT_FALSE(DecodeMessage(body, &out).ok());
}

TEST(Messages, UnknownClientRoleRejected) {
  for (int role : {0, 4, 255}) {
    std::string body = EncodeBody(Hello{});
    body[0] = static_cast<char>(role);
    Hello m;
    Status st = DecodeMessage(body, &m);
    EXPECT_FALSE(st.ok()) << "role " << role;
    EXPECT_NE(st.message().find("role"), std::string::npos) << st.message();
  }
}

TEST(Messages, InvalidBooleanRejected) {
  std::string hello = EncodeBody(Hello{});
  hello.back() = 2;  // log_to_driver
  Hello h;
  EXPECT_FALSE(DecodeMessage(hello, &h).ok());

  std::string cancel = EncodeBody(CancelTask{Id(1, 1, 1), false, false});
  for (size_t at : {cancel.size() - 2, cancel.size() - 1}) {
    std::string b = cancel;
    b[at] = static_cast<char>(0x80);
    CancelTask c;
    EXPECT_FALSE(DecodeMessage(b, &c).ok());
  }

  // The retry_exceptions byte: where the encodings with it false and true differ.
  TaskSpec off = SampleSpec();
  off.retry_exceptions = false;
  std::string spec = EncodeBody(SampleSpec()), spec_off = EncodeBody(off);
  ASSERT_EQ(spec.size(), spec_off.size());
  size_t at = 0;
  while (at < spec.size() && spec[at] == spec_off[at]) ++at;
  ASSERT_LT(at, spec.size());
  spec[at] = 3;
  TaskSpec s;
  EXPECT_FALSE(DecodeMessage(spec, &s).ok());

  std::string done = EncodeBody(TaskDone{Id(1, 1, 0), {}, true});
  done[done.size() - 5] = 2;  // retryable (before the empty error text)
  TaskDone d;
  EXPECT_FALSE(DecodeMessage(done, &d).ok());
}

TEST(Messages, NegativeResourceRejected) {
  ResourceUpdate m{1, {{"CPU", -1}}};
  ResourceUpdate out;
  Status st = DecodeMessage(EncodeBody(m), &out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("CPU"), std::string::npos) << st.message();

  TaskSpec spec = SampleSpec();
  spec.resources = {{"CPU", kResourceUnit}, {"GPU", std::numeric_limits<int64_t>::min()}};
  TaskSpec s;
  EXPECT_FALSE(DecodeMessage(EncodeBody(spec), &s).ok());
}

TEST(Messages, NumReturnsLimit) {
  TaskSpec spec = SampleSpec();
  spec.num_returns = 100000;
  TaskSpec ok;
  EXPECT_TRUE(DecodeMessage(EncodeBody(spec), &ok).ok());
  for (uint32_t n : {100001u, 0xFFFFFFFFu}) {
    spec.num_returns = n;
    TaskSpec bad;
    EXPECT_FALSE(DecodeMessage(EncodeBody(spec), &bad).ok()) << n;
  }
}

// ------------------------------------------------------------------ forged element counts

// Decodes `body` as M while tracking the largest single allocation; expects failure and no
// allocation beyond a small multiple of the body (the body is all a peer can back a count with).
template <typename M>
void ExpectForgedCountRejected(const std::string& body, const char* what) {
  M m;
  g_max_alloc = 0;
  g_track_alloc = true;
  Status st = DecodeMessage(body, &m);
  g_track_alloc = false;
  EXPECT_FALSE(st.ok()) << what;
  if (!st.ok()) {
    EXPECT_EQ(st.code(), StatusCode::kProtocolError) << what;
  }
  EXPECT_LT(g_max_alloc.load(), 64u * 1024) << what << ": decoder allocated "
                                            << g_max_alloc.load() << " bytes";
}

std::string U32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

TEST(ForgedCounts, TrackerSeesAllocations) {
  // Sanity check of the allocation hook itself, so the tests below cannot pass vacuously.
  g_max_alloc = 0;
  g_track_alloc = true;
  std::vector<char>* v = new std::vector<char>(100000);
  g_track_alloc = false;
  EXPECT_GE(g_max_alloc.load(), 100000u);
  delete v;
}

TEST(ForgedCounts, Rejected) {
  const uint32_t kHuge[] = {0xFFFFFFFFu, 0x10000000u, 1000};
  for (uint32_t n : kHuge) {
    std::string pad(40, '\0');
    // IdList (Subscribe): 16 bytes per id.
    ExpectForgedCountRejected<IdList>(U32(n) + pad, "IdList");
    // Byte string length (RegisterFunction.function_id).
    ExpectForgedCountRejected<RegisterFunction>(U32(n) + pad, "Bytes");
    // RefDeltas: 20 bytes per delta.
    ExpectForgedCountRejected<RefDeltas>(U32(n) + pad, "RefDeltas");
    // ResourceMap inside ResourceUpdate (after the node index).
    ExpectForgedCountRejected<ResourceUpdate>(U32(1) + U32(n) + pad, "ResourceMap");
    // NodeTable.nodes, ResourceView entries.
    ExpectForgedCountRejected<NodeTable>(std::string(1, '\1') + U32(n) + pad, "NodeTable");
    ExpectForgedCountRejected<ResourceView>(U32(n) + pad, "ResourceView");
    // TaskDone.returns.
    ExpectForgedCountRejected<TaskDone>(Id(1, 1, 0).Binary() + U32(n) + pad, "TaskDone.returns");
    // ClusterInfo.nodes.
    ExpectForgedCountRejected<ClusterInfo>(std::string(8, '\0') + U32(n) + pad, "ClusterInfo");
    // ObjectValue.data / nested_refs inside PutObject.
    ExpectForgedCountRejected<PutObject>(Id(1, 1, 1).Binary() + '\0' + U32(n) + pad,
                                         "ObjectValue.data");
    ExpectForgedCountRejected<PutObject>(Id(1, 1, 1).Binary() + '\0' + U32(0) + U32(n) + pad,
                                         "ObjectValue.nested_refs");
    // TaskSpec.arg_refs and ExecuteTask.args.
    // task id, kind (normal), job id, then three empty byte strings.
    std::string spec_prefix =
        Id(1, 1, 0).Binary() + std::string(1, '\0') + std::string(8, '\0') + U32(0) + U32(0) + U32(0);
    {
      TaskSpec plain;
      plain.task_id = Id(1, 1, 0);
      ASSERT_EQ(EncodeBody(plain).substr(0, spec_prefix.size()), spec_prefix);
    }
    ExpectForgedCountRejected<TaskSpec>(spec_prefix + U32(n) + pad, "TaskSpec.arg_refs");
    // ActorOptions.lifetime_resources: task id, kind (creation), actor id, max_concurrency 1,
    // max_restarts 0, detached, is_async, empty class name, then the count.
    std::string creation_prefix = Id(1, 1, 0).Binary() + std::string(1, '\1') + Id(1, 1, 0).Binary() +
                                  U32(1) + U32(0) + std::string(2, '\0') + U32(0);
    {
      TaskSpec creation;
      creation.task_id = creation.actor_id = Id(1, 1, 0);
      creation.kind = TaskKind::kActorCreation;
      ASSERT_EQ(EncodeBody(creation).substr(0, creation_prefix.size()), creation_prefix);
    }
    ExpectForgedCountRejected<TaskSpec>(creation_prefix + U32(n) + pad, "ActorOptions.lifetime_resources");
    std::string spec = EncodeBody(SampleSpec());
    ExpectForgedCountRejected<ExecuteTask>(spec + U32(0) + U32(n) + pad, "ExecuteTask.args");
    ExpectForgedCountRejected<ExecuteTask>(spec + U32(0) + U32(0) + U32(n) + pad, "ExecuteTask.gpus");
  }
}

TEST(ForgedCounts, CountOneMoreThanPresent) {
  IdList m;
  m.ids = {Id(1, 1, 1), Id(2, 2, 2)};
  std::string body = EncodeBody(m);
  uint32_t three = 3;
  std::memcpy(body.data(), &three, 4);
  IdList out;
  EXPECT_FALSE(DecodeMessage(body, &out).ok());

  RefDeltas d;
  d.deltas = {{Id(1, 1, 1), 1}};
  std::string dbody = EncodeBody(d);
  uint32_t two = 2;
  std::memcpy(dbody.data(), &two, 4);
  RefDeltas dout;
  EXPECT_FALSE(DecodeMessage(dbody, &dout).ok());
}

// ------------------------------------------------------------------ Reader primitives

TEST(Reader, BoundsChecked) {
  std::string three("\x01\x02\x03", 3);
  Reader r(three);
  uint32_t v32;
  EXPECT_FALSE(r.U32(&v32).ok());
  EXPECT_EQ(r.remaining(), 3u);  // a failed read consumes nothing
  uint8_t v8;
  EXPECT_TRUE(r.U8(&v8).ok());
  EXPECT_EQ(v8, 1);
  uint64_t v64;
  EXPECT_FALSE(r.U64(&v64).ok());
  ObjectID id;
  EXPECT_FALSE(r.Id(&id).ok());
  EXPECT_FALSE(r.ExpectEnd().ok());
}

TEST(Reader, IntegersAndDoublesRoundTrip) {
  std::string s;
  Writer w(&s);
  w.U8(0xAB);
  w.U32(0xDEADBEEF);
  w.U64(0x0123456789ABCDEFull);
  w.I32(-5);
  w.I64(std::numeric_limits<int64_t>::min());
  w.F64(-0.125);
  w.Bytes("");
  w.Bytes(std::string("a\0b", 3));
  Reader r(s);
  uint8_t a;
  uint32_t b;
  uint64_t c;
  int32_t d;
  int64_t e;
  double f;
  std::string g, h;
  ASSERT_TRUE(r.U8(&a).ok());
  ASSERT_TRUE(r.U32(&b).ok());
  ASSERT_TRUE(r.U64(&c).ok());
  ASSERT_TRUE(r.I32(&d).ok());
  ASSERT_TRUE(r.I64(&e).ok());
  ASSERT_TRUE(r.F64(&f).ok());
  ASSERT_TRUE(r.Bytes(&g).ok());
  ASSERT_TRUE(r.Bytes(&h).ok());
  EXPECT_TRUE(r.ExpectEnd().ok());
  EXPECT_EQ(a, 0xAB);
  EXPECT_EQ(b, 0xDEADBEEF);
  EXPECT_EQ(c, 0x0123456789ABCDEFull);
  EXPECT_EQ(d, -5);
  EXPECT_EQ(e, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f, -0.125);
  EXPECT_EQ(g, "");
  EXPECT_EQ(h, std::string("a\0b", 3));
}

TEST(Reader, CountChecksRemainingBytes) {
  std::string s = U32(2) + std::string(10, '\0');
  {
    Reader r(s);
    uint32_t n;
    EXPECT_TRUE(r.Count(&n, 5).ok());
    EXPECT_EQ(n, 2u);
  }
  {
    Reader r(s);
    uint32_t n;
    EXPECT_FALSE(r.Count(&n, 6).ok());
  }
  {
    std::string zero = U32(0);
    Reader r(zero);
    uint32_t n;
    EXPECT_TRUE(r.Count(&n, 16).ok());
    EXPECT_EQ(n, 0u);
    EXPECT_TRUE(r.ExpectEnd().ok());
  }
}

TEST(ObjectIds, LayoutAndDerivedIds) {
  ObjectID id = ObjectID::Make(0x1122334455667788ull, 7, 0);
  EXPECT_EQ(id.Creator(), 0x1122334455667788ull);
  EXPECT_EQ(id.Sequence(), 7u);
  EXPECT_EQ(id.Index(), 0u);
  EXPECT_EQ(id.ReturnId(0).Index(), 1u);
  EXPECT_EQ(id.ReturnId(4).TaskId(), id);
  EXPECT_EQ(ObjectID::FromBinary(id.Binary()), id);
  EXPECT_EQ(id.Hex().size(), 32u);
  EXPECT_TRUE(ObjectID().IsNil());
  EXPECT_FALSE(id.IsNil());
}

}  // namespace
}  // namespace quanta::protocol
