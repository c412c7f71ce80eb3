#include "core/core_client.h"
#include "core/deadline.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "common/logging.h"
#include "net/socket.h"
#include "protocol/frame.h"

namespace quanta {

using protocol::MessageType;

namespace {

// Reads one complete frame from a blocking fd (used only for the Hello handshake).
Status ReadFrameBlocking(int fd, protocol::FrameDecoder* dec, protocol::Frame* frame) {
  while (true) {
    auto next = dec->Next(frame);
    if (!next.ok()) return next.status();
    if (next.value()) return Status::Ok();
    char* space = dec->WritableSpace(65536);
    ssize_t n = ::read(fd, space, 65536);
    if (n == 0) return Status::IOError("node closed the connection during the handshake");
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read");
    }
    dec->Commit(static_cast<size_t>(n));
  }
}

}  // namespace

Result<int64_t> CoreClient::ReplySpinMicros(int64_t option) {
  if (option >= 0) return std::min<int64_t>(option, 10000);
  const char* env = std::getenv("QUANTA_CLIENT_SPIN_US");
  if (env == nullptr || *env == '\0') return int64_t{100};
  char* end = nullptr;
  long long v = std::strtoll(env, &end, 10);
  if (*end != '\0' || v < 0 || v > 10000) {
    return Status::InvalidArgument(std::string("QUANTA_CLIENT_SPIN_US=") + env +
                                   ": it must be a whole number of microseconds from 0 (never poll) to 10000");
  }
  return static_cast<int64_t>(v);
}

Result<std::shared_ptr<CoreClient>> CoreClient::Connect(const Options& options) {
  auto spin_us = ReplySpinMicros(options.reply_spin_us);
  if (!spin_us.ok()) return spin_us.status();
  auto fd = net::ConnectUnix(options.node_socket, false);
  if (!fd.ok()) return fd.status();
  std::shared_ptr<CoreClient> client(new CoreClient());
  client->fd_ = fd.value();
  // Talk only to a node of our own user: another user's process listening on a path we were
  // pointed at must not receive our tasks nor feed us values to unpickle.
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(client->fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
    return Status::IOError("the process listening on " + options.node_socket + " runs as uid " +
                           std::to_string(cred.uid) + ", not as you (uid " + std::to_string(::geteuid()) +
                           "); refusing to connect to it");
  }
  client->role_ = options.role;
  client->spin_ = net::SpinBudget(net::SpinBudget::Options{std::chrono::microseconds(spin_us.value())});
  client->spin_max_us_ = spin_us.value();
  protocol::Hello hello;
  hello.role = options.role;
  hello.worker_token = options.worker_token;
  hello.pid = static_cast<uint32_t>(getpid());
  hello.log_to_driver = options.log_to_driver;
  std::string out;
  protocol::AppendMessage(&out, MessageType::kHello, hello);
  QUANTA_RETURN_IF_ERROR(net::WriteAll(client->fd_, out.data(), out.size()));

  protocol::FrameDecoder dec;
  protocol::Frame frame;
  QUANTA_RETURN_IF_ERROR(ReadFrameBlocking(client->fd_, &dec, &frame));
  if (frame.type != static_cast<uint16_t>(MessageType::kHelloReply)) {
    return Status::ProtocolError("node answered Hello with message type " + std::to_string(frame.type));
  }
  protocol::HelloReply reply;
  QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &reply));
  client->client_id_ = reply.client_id;
  client->node_id_ = reply.node_id;
  client->session_dir_ = reply.session_dir;
  client->inline_threshold_ = reply.inline_threshold;
  client->cluster_id_ = reply.cluster_id;
  if (reply.store_size > 0) {
    auto store = SharedMemory::Open(reply.store_path, reply.store_size);
    if (!store.ok()) return Status::IOError("cannot map the node's object store: " + store.status().message());
    client->store_ = std::move(store).value();
  }
  client->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (client->wake_fd_ < 0) return Status::FromErrno("eventfd");
  // Frames that arrived together with the reply are handled before anyone else can read.
  client->decoder_ = std::move(dec);
  client->HandleBufferedFrames();
  client->reader_ = std::thread([raw = client.get()] { raw->BackgroundReader(); });
  return client;
}

CoreClient::~CoreClient() {
  Disconnect();
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) {
      reader_.detach();
    } else {
      reader_.join();
    }
  }
  if (fd_ >= 0) ::close(fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void CoreClient::Disconnect() {
  if (closed_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (close_reason_.empty()) close_reason_ = "the Quanta session was shut down";
  }
  ::shutdown(fd_, SHUT_RDWR);
  cv_.notify_all();
  reader_role_.WakeBackground();
}

TaskID CoreClient::NextTaskId() { return ObjectID::Make(client_id_, ++sequence_, 0); }
ObjectID CoreClient::NextPutId() { return ObjectID::Make(client_id_, ++sequence_, ObjectID::kPutIndex); }

void CoreClient::TakeDeltas(std::string* out) {
  protocol::RefDeltas msg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    msg.deltas.reserve(pending_deltas_.size());
    for (const auto& [id, d] : pending_deltas_) {
      if (d != 0) msg.deltas.emplace_back(id, d);
    }
    pending_deltas_.clear();
  }
  if (!msg.deltas.empty()) protocol::AppendMessage(out, MessageType::kRefDeltas, msg);
  protocol::RefDeltas unpins;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, d] : pending_unpins_) unpins.deltas.emplace_back(id, d);
    pending_unpins_.clear();
  }
  if (!unpins.deltas.empty()) protocol::AppendMessage(out, MessageType::kPinDeltas, unpins);
}

Status CoreClient::WriteInOrder(const std::string& frames) {
  std::string out;
  TakeDeltas(&out);  // reference changes made before these frames must reach the node first
  out += frames;
  if (out.empty() || closed_) return Status::Ok();
  Status st = net::WriteAll(fd_, out.data(), out.size());
  if (!st.ok()) return Status::IOError("lost the connection to the node daemon: " + st.message());
  return st;
}

template <typename M>
Status CoreClient::Send(MessageType type, const M& msg) {
  if (closed_) return Status::Cancelled(close_reason_.empty() ? "not connected" : close_reason_);
  std::string frame;
  protocol::AppendMessage(&frame, type, msg);
  if (frame.size() - protocol::kFrameHeaderSize > protocol::kMaxFrameBody) {
    // Refused here, with the reason, rather than sent and answered by the node closing the
    // connection (which would end the whole session).
    return Status::InvalidArgument(std::string("a ") + protocol::MessageTypeName(type) + " message of " +
                                   std::to_string((frame.size() - protocol::kFrameHeaderSize) >> 20) +
                                   " MiB exceeds the protocol's limit of " +
                                   std::to_string(protocol::kMaxFrameBody >> 20) +
                                   " MiB; large data must travel as objects (quanta.put, or as task arguments)");
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  return WriteInOrder(frame);
}

Status CoreClient::RegisterFunction(const std::string& function_id, const std::string& payload) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!functions_.insert(function_id).second) return Status::Ok();
  }
  Status st = Send(MessageType::kRegisterFunction, protocol::RegisterFunction{function_id, payload});
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    functions_.erase(function_id);  // not registered: a later attempt must send it again
  }
  return st;
}

bool CoreClient::IsFunctionRegistered(const std::string& function_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return functions_.count(function_id) > 0;
}

Status CoreClient::SubmitTask(const protocol::TaskSpec& spec) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint32_t i = 0; i < spec.num_returns; ++i) {
      Local& l = objects_[spec.ReturnId(i)];
      l.refs += 1;
      l.subscribed = true;  // the node pushes returns to the submitter
    }
    if (spec.generator == protocol::TaskSpec::kStreaming) {
      streams_[spec.task_id].backpressure = spec.generator_backpressure > 0;
    }
  }
  return Send(MessageType::kSubmitTask, spec);
}

Status CoreClient::Put(const ObjectID& id, protocol::ObjectValue value) {
  auto shared = std::make_shared<protocol::ObjectValue>(std::move(value));
  {
    std::lock_guard<std::mutex> lock(mu_);
    Local& l = objects_[id];
    l.refs += 1;
    l.value = shared;
    l.subscribed = true;
  }
  return Send(MessageType::kPutObject, protocol::PutObject{id, *shared});
}

void CoreClient::AddLocalRef(const ObjectID& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Local& l = objects_[id];
  if (l.refs++ == 0) pending_deltas_[id] += 1;
}

void CoreClient::RemoveLocalRef(const ObjectID& id) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(id);
    if (it == objects_.end()) return;
    if (--it->second.refs > 0) return;
    if (it->second.Unused()) objects_.erase(it);
    if (closed_) return;
    wake = pending_deltas_.empty();
    pending_deltas_[id] -= 1;
  }
  if (wake) {  // let the reader thread flush soon; more releases may join the batch
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
    (void)ignored;
  }
}

size_t CoreClient::NumLocalRefs() {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

std::vector<ObjectID> CoreClient::CollectMissing(const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> subscribe;
  for (const auto& id : ids) {
    if (id.Index() >= 2 && streams_.count(id.TaskId()) && !objects_.count(id)) continue;  // pushed to us
    Local& l = objects_[id];
    if (!l.value && !l.subscribed) {
      l.subscribed = true;
      subscribe.push_back(id);
    }
  }
  return subscribe;
}

void CoreClient::SetBlocked(bool blocked) {
  if (role_ != protocol::ClientRole::kWorker) return;
  bool send;
  {
    std::lock_guard<std::mutex> lock(mu_);
    send = blocked ? blocked_depth_++ == 0 : --blocked_depth_ == 0;
  }
  if (send) {
    Status st = Send(blocked ? MessageType::kWorkerBlocked : MessageType::kWorkerUnblocked, protocol::Empty{});
    (void)st;
  }
}

Result<std::vector<CoreClient::GotValue>> CoreClient::Get(const std::vector<ObjectID>& ids,
                                                          int64_t timeout_ms) {
  // An id is readable when its value is here and, for shared-memory objects, the node has
  // pinned it for us (or refused to, with an error).
  auto readable = [](const Local& l) {
    if (!l.value) return false;
    if (l.value->kind != protocol::ObjectKind::kStored) return true;
    return l.node_pins > 0 || !l.pin_error.empty();
  };
  std::vector<GotValue> out(ids.size());
  std::vector<ObjectID> interested;  // pin requests of ours: their deliveries must wait for us
  Status status;
  bool blocked = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = Deadline(timeout_ms);
    size_t i = 0;
    while (i < ids.size()) {
      Local& l = objects_[ids[i]];
      if (readable(l)) {
        if (l.value->kind == protocol::ObjectKind::kStored) {
          if (!l.pin_error.empty()) {
            status = Status::ResourceExhausted(l.pin_error);
            l.pin_error.clear();
            break;
          }
          ++l.uses;  // released by the caller through ReleaseUse
          out[i] = GotValue{l.value, store_->data() + l.offset, l.size};
        } else {
          out[i] = GotValue{l.value, nullptr, 0};
        }
        ++i;
        continue;
      }
      if (closed_) {
        status = Status::Cancelled(close_reason_);
        break;
      }
      // Ask the node for what is missing: the value, or a pinned location of a stored object.
      std::vector<ObjectID> subscribe, pin;
      for (size_t j = i; j < ids.size(); ++j) {
        Local& m = objects_[ids[j]];
        if (!m.value && !m.subscribed) {
          m.subscribed = true;
          subscribe.push_back(ids[j]);
        } else if (m.value && m.value->kind == protocol::ObjectKind::kStored && m.node_pins == 0 &&
                   !m.pin_requested) {
          m.pin_requested = true;
          ++m.pin_waiters;
          interested.push_back(ids[j]);
          pin.push_back(ids[j]);
        }
      }
      if (!subscribe.empty() || !pin.empty() || !blocked) {
        lock.unlock();
        if (!subscribe.empty()) status = Send(MessageType::kSubscribe, protocol::IdList{subscribe});
        if (status.ok() && !pin.empty()) status = Send(MessageType::kSubscribePinned, protocol::IdList{pin});
        if (!blocked) {
          SetBlocked(true);
          blocked = true;
        }
        lock.lock();
        if (!status.ok()) break;
        continue;
      }
      // One value awaited (a sync call's result): it usually comes within microseconds.
      bool timed_out = AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline, ids.size() == 1);
      Local& again = objects_[ids[i]];
      if (timed_out && !readable(again)) {
        status = Status::TimedOut("get timed out after " + std::to_string(timeout_ms) + " ms");
        break;
      }
    }
    if (!status.ok()) {
      // Give back the uses taken for the ids already collected.
      for (size_t j = 0; j < i && j < out.size(); ++j) {
        if (out[j].data != nullptr) {
          Local& l = objects_[ids[j]];
          --l.uses;
          MaybeUnpin(ids[j], l);
        }
      }
    }
    for (const auto& id : interested) {
      Local& l = objects_[id];
      --l.pin_waiters;
      MaybeUnpin(id, l);
    }
  }
  if (blocked) SetBlocked(false);
  if (!status.ok()) return status;
  return out;
}

Result<std::vector<bool>> CoreClient::Wait(const std::vector<ObjectID>& ids, size_t num_ready,
                                           int64_t timeout_ms, bool fetch_local) {
  std::vector<ObjectID> subscribe;
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscribe = CollectMissing(ids);
  }
  if (!subscribe.empty()) QUANTA_RETURN_IF_ERROR(Send(MessageType::kSubscribe, protocol::IdList{subscribe}));
  std::vector<bool> ready(ids.size(), false);
  std::vector<ObjectID> fetch;  // stored elsewhere, to be brought to this node (fetch_local)
  std::unordered_set<ObjectID, ObjectIDHash> fetching;
  auto count_ready = [&] {
    size_t n = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = objects_.find(ids[i]);
      bool here = it != objects_.end() && it->second.value != nullptr;
      ready[i] = here || GeneratorItemReady(ids[i]);  // a generator's next item, or its end
      if (here && fetch_local && it->second.value->kind == protocol::ObjectKind::kStored) {
        auto loc = protocol::StoredLocation::Decode(it->second.value->data);
        if (loc.ok() && !loc->local) {
          ready[i] = false;
          if (fetching.insert(ids[i]).second) fetch.push_back(ids[i]);
        }
      }
      n += ready[i];
    }
    return n;
  };
  bool blocked = false;
  Status status;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = Deadline(timeout_ms);
    while (count_ready() < num_ready) {
      if (closed_) {
        status = Status::Cancelled(close_reason_);
        break;
      }
      if (!fetch.empty()) {
        std::vector<ObjectID> now;
        now.swap(fetch);
        lock.unlock();
        status = Send(MessageType::kFetchObjects, protocol::IdList{now});
        lock.lock();
        if (!status.ok()) break;
        continue;
      }
      if (timeout_ms == 0) break;
      if (!blocked && role_ == protocol::ClientRole::kWorker) {
        lock.unlock();
        SetBlocked(true);
        blocked = true;
        lock.lock();
        continue;
      }
      if (AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline)) {
        count_ready();
        break;
      }
    }
  }
  if (blocked) SetBlocked(false);
  if (!status.ok()) return status;
  return ready;
}

Status CoreClient::Cancel(const ObjectID& id, bool force, bool recursive) {
  return Send(MessageType::kCancelTask, protocol::CancelTask{id, force, recursive});
}

Status CoreClient::KillActor(const ObjectID& actor_id, bool no_restart) {
  return Send(MessageType::kKillActor, protocol::KillActor{actor_id, no_restart});
}

template <typename R, typename M>
Result<R> CoreClient::Request(MessageType type, M msg, int64_t timeout_ms, const char* what) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    msg.request_id = replies_.Open();
  }
  Status sent = Send(type, msg);
  std::unique_lock<std::mutex> lock(mu_);
  if (!sent.ok()) {
    replies_.Abandon(msg.request_id);
    return sent;
  }
  auto deadline = Deadline(timeout_ms);
  while (true) {
    if (auto reply = replies_.Take<R>(msg.request_id)) return std::move(*reply);
    if (closed_) {
      replies_.Abandon(msg.request_id);
      return Status::Cancelled(close_reason_);
    }
    if (AwaitProgress(lock, timeout_ms < 0 ? nullptr : &deadline, /*spin=*/true)) {
      if (auto reply = replies_.Take<R>(msg.request_id)) return std::move(*reply);
      replies_.Abandon(msg.request_id);
      return Status::TimedOut(std::string("the node daemon did not answer ") + what + " in time");
    }
  }
}

Result<protocol::ActorNameReply> CoreClient::ActorName(protocol::ActorName request, int64_t timeout_ms) {
  return Request<protocol::ActorNameReply>(MessageType::kActorName, std::move(request), timeout_ms,
                                           "a named-actor request");
}

Result<protocol::ClusterInfo> CoreClient::GetClusterInfo(int64_t timeout_ms) {
  return Request<protocol::ClusterInfo>(MessageType::kGetClusterInfo, protocol::RequestId{}, timeout_ms,
                                        "a cluster-info request");
}

Result<protocol::NodeStats> CoreClient::GetNodeStats(int64_t timeout_ms) {
  return Request<protocol::NodeStats>(MessageType::kGetNodeStats, protocol::RequestId{}, timeout_ms,
                                      "a node-stats request");
}

Result<protocol::NodeStateReply> CoreClient::GetNodeState(protocol::NodeStateQuery query, int64_t timeout_ms) {
  return Request<protocol::NodeStateReply>(MessageType::kGetNodeState, std::move(query), timeout_ms,
                                           "a node-state query");
}

Result<protocol::ControlReply> CoreClient::ControlCall(protocol::ControlRequest request, int64_t timeout_ms) {
  return Request<protocol::ControlReply>(MessageType::kControlRequest, std::move(request), timeout_ms,
                                         "a control-service request");
}

Status CoreClient::CreatePlacementGroup(const protocol::PlacementGroupSpec& spec) {
  return Send(MessageType::kCreatePlacementGroup, spec);
}

Status CoreClient::RemovePlacementGroup(const ObjectID& id) {
  protocol::PlacementGroupQuery q;
  q.id = id;
  return Send(MessageType::kRemovePlacementGroup, q);
}

Result<protocol::PlacementGroups> CoreClient::GetPlacementGroups(protocol::PlacementGroupQuery query,
                                                                 int64_t timeout_ms) {
  return Request<protocol::PlacementGroups>(MessageType::kGetPlacementGroups, std::move(query), timeout_ms,
                                            "a placement-group request");
}

Result<protocol::ExecuteTask> CoreClient::NextTask() {
  std::unique_lock<std::mutex> lock(mu_);
  while (tasks_.empty() && !closed_) AwaitProgress(lock, nullptr);
  if (tasks_.empty()) return Status::Cancelled(close_reason_);
  protocol::ExecuteTask task = std::move(tasks_.front());
  tasks_.pop_front();
  if (task.spec.kind == protocol::TaskKind::kNormal) running_task_ = task.spec.task_id;
  return task;
}

Status CoreClient::TaskDone(const protocol::TaskDone& msg) {
  std::optional<WorkerLanes::Route> route;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_task_ == msg.task_id) running_task_ = TaskID();
    generator_acks_.erase(msg.task_id);
    route = lanes_.TakeRoute(msg.task_id);
  }
  if (!route) return Send(MessageType::kTaskDone, msg);
  // A lane call: its lane carries inline results without refs; anything else (a result in the
  // node's store, refs the node must hand off, exit_actor()'s, which the node must see to
  // record why the actor ends, a lane that broke) goes through the node.
  bool fits = !route->adopted;
  for (const auto& v : msg.returns) {
    fits = fits && v.kind != protocol::ObjectKind::kStored && v.kind != protocol::ObjectKind::kActorDied &&
           v.nested_refs.empty();
  }
  if (fits && lanes_.Write(route->lane, MessageType::kTaskDone, msg).ok()) return Status::Ok();
  if (!route->adopted) QUANTA_RETURN_IF_ERROR(AdoptLaneCall(*route));
  return Send(MessageType::kTaskDone, msg);
}

Status CoreClient::AdoptLaneCall(WorkerLanes::Route& route) {
  route.adopted = true;
  return Send(MessageType::kLaneAdopt, protocol::LaneAdopt{route.caller_node, route.spec, route.ticket});
}

// Request is defined in this file; core_store.cc uses it for these.
template Result<protocol::CreateObjectReply> CoreClient::Request(MessageType, protocol::CreateObject, int64_t,
                                                                 const char*);
template Result<protocol::StoreStatsReply> CoreClient::Request(MessageType, protocol::RequestId, int64_t,
                                                               const char*);
// Send is defined in this file; core_store.cc and core_reader.cc use it for these messages.
template Status CoreClient::Send(MessageType, const protocol::CreateObject&);
template Status CoreClient::Send(MessageType, const protocol::PutObject&);
template Status CoreClient::Send(MessageType, const protocol::RequestId&);
template Status CoreClient::Send(MessageType, const protocol::TaskDone&);
template Status CoreClient::Send(MessageType, const protocol::LaneAdopt&);
template Status CoreClient::Send(MessageType, const protocol::IdList&);
template Status CoreClient::Send(MessageType, const protocol::GeneratorItem&);
template Status CoreClient::Send(MessageType, const protocol::GeneratorAck&);
template Status CoreClient::Send(MessageType, const protocol::PlacementGroupSpec&);
template Status CoreClient::Send(MessageType, const protocol::ControlRequest&);
template Status CoreClient::Send(MessageType, const protocol::PlacementGroupQuery&);
template Status CoreClient::Send(MessageType, const protocol::NodeStateQuery&);

}  // namespace quanta
