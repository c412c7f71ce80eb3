#include "protocol/messages.h"

namespace quanta::protocol {

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kHello: return "Hello";
    case MessageType::kRegisterFunction: return "RegisterFunction";
    case MessageType::kSubmitTask: return "SubmitTask";
    case MessageType::kPutObject: return "PutObject";
    case MessageType::kSubscribe: return "Subscribe";
    case MessageType::kRefDeltas: return "RefDeltas";
    case MessageType::kWorkerBlocked: return "WorkerBlocked";
    case MessageType::kWorkerUnblocked: return "WorkerUnblocked";
    case MessageType::kTaskDone: return "TaskDone";
    case MessageType::kCancelTask: return "CancelTask";
    case MessageType::kGetClusterInfo: return "GetClusterInfo";
    case MessageType::kKillActor: return "KillActor";
    case MessageType::kCreateObject: return "CreateObject";
    case MessageType::kSubscribePinned: return "SubscribePinned";
    case MessageType::kPinDeltas: return "PinDeltas";
    case MessageType::kGetStoreStats: return "GetStoreStats";
    case MessageType::kTasksReturned: return "TasksReturned";
    case MessageType::kGetNodeStats: return "GetNodeStats";
    case MessageType::kFetchObjects: return "FetchObjects";
    case MessageType::kGetNodeState: return "GetNodeState";
    case MessageType::kGeneratorItem: return "GeneratorItem";
    case MessageType::kGeneratorAck: return "GeneratorAck";
    case MessageType::kNodeState: return "NodeState";
    case MessageType::kLaneAdopt: return "LaneAdopt";
    case MessageType::kLaneCall: return "LaneCall";
    case MessageType::kLaneAttach: return "LaneAttach";
    case MessageType::kLaneReady: return "LaneReady";
    case MessageType::kNodeStats: return "NodeStats";
    case MessageType::kReturnTasks: return "ReturnTasks";
    case MessageType::kCreateObjectReply: return "CreateObjectReply";
    case MessageType::kStoreStats: return "StoreStats";
    case MessageType::kActorName: return "ActorName";
    case MessageType::kActorNameReply: return "ActorNameReply";
    case MessageType::kHelloReply: return "HelloReply";
    case MessageType::kObjectReady: return "ObjectReady";
    case MessageType::kExecuteTask: return "ExecuteTask";
    case MessageType::kLogLines: return "LogLines";
    case MessageType::kWarning: return "Warning";
    case MessageType::kClusterInfo: return "ClusterInfo";
    case MessageType::kRegisterNode: return "RegisterNode";
    case MessageType::kRegisterNodeReply: return "RegisterNodeReply";
    case MessageType::kResourceUpdate: return "ResourceUpdate";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatAck: return "HeartbeatAck";
    case MessageType::kNodeTable: return "NodeTable";
    case MessageType::kResourceView: return "ResourceView";
    case MessageType::kDrainNode: return "DrainNode";
    case MessageType::kCreatePlacementGroup: return "CreatePlacementGroup";
    case MessageType::kRemovePlacementGroup: return "RemovePlacementGroup";
    case MessageType::kGetPlacementGroups: return "GetPlacementGroups";
    case MessageType::kPlacementGroups: return "PlacementGroups";
    case MessageType::kReserveBundles: return "ReserveBundles";
    case MessageType::kBundlesReserved: return "BundlesReserved";
    case MessageType::kReturnBundles: return "ReturnBundles";
    case MessageType::kJobFinished: return "JobFinished";
    case MessageType::kActorUpdate: return "ActorUpdate";
    case MessageType::kSubscribeActor: return "SubscribeActor";
    case MessageType::kControlRequest: return "ControlRequest";
    case MessageType::kControlReply: return "ControlReply";
    case MessageType::kJobStarted: return "JobStarted";
    case MessageType::kTaskEvents: return "TaskEvents";
    case MessageType::kKillActorRemote: return "KillActorRemote";
    case MessageType::kCancelRemote: return "CancelRemote";
    case MessageType::kPeerStateQuery: return "PeerStateQuery";
    case MessageType::kPeerStateReply: return "PeerStateReply";
    case MessageType::kGeneratorItemRemote: return "GeneratorItemRemote";
    case MessageType::kGeneratorAckRemote: return "GeneratorAckRemote";
    case MessageType::kPeerHello: return "PeerHello";
    case MessageType::kForwardTask: return "ForwardTask";
    case MessageType::kTaskResult: return "TaskResult";
    case MessageType::kForwardedLogLines: return "ForwardedLogLines";
    case MessageType::kAddBorrower: return "AddBorrower";
    case MessageType::kBorrowAck: return "BorrowAck";
    case MessageType::kRemoveBorrower: return "RemoveBorrower";
    case MessageType::kSubscribeObject: return "SubscribeObject";
    case MessageType::kObjectInfo: return "ObjectInfo";
    case MessageType::kAddLocation: return "AddLocation";
    case MessageType::kRemoveLocation: return "RemoveLocation";
    case MessageType::kFreeObject: return "FreeObject";
    case MessageType::kPullObject: return "PullObject";
    case MessageType::kPullFailed: return "PullFailed";
    case MessageType::kHandOffDone: return "HandOffDone";
  }
  return "Unknown";
}

void EncodeResources(Writer& w, const ResourceMap& m) {
  w.U32(static_cast<uint32_t>(m.size()));
  for (const auto& [name, amount] : m) {
    w.Bytes(name);
    w.I64(amount);
  }
}

Status DecodeResources(Reader& r, ResourceMap* m) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 12));
  m->resize(n);
  for (auto& [name, amount] : *m) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
    QUANTA_RETURN_IF_ERROR(r.I64(&amount));
    if (amount < 0) return Status::ProtocolError("negative amount for resource " + name);
  }
  return Status::Ok();
}

std::string StoredLocation::Encode() const {
  std::string out;
  Writer w(&out);
  w.U64(offset);
  w.U64(size);
  w.U8(static_cast<uint8_t>((pinned ? 1 : 0) | (local ? 0 : 2)));
  return out;
}

Result<StoredLocation> StoredLocation::Decode(std::string_view data) {
  StoredLocation loc;
  Reader r(data);
  QUANTA_RETURN_IF_ERROR(r.U64(&loc.offset));
  QUANTA_RETURN_IF_ERROR(r.U64(&loc.size));
  uint8_t flags;
  QUANTA_RETURN_IF_ERROR(r.U8(&flags));
  if (flags > 3) return Status::ProtocolError("unknown stored-location flags " + std::to_string(flags));
  loc.pinned = flags & 1;
  loc.local = !(flags & 2);
  QUANTA_RETURN_IF_ERROR(r.ExpectEnd());
  return loc;
}

void ObjectValue::Encode(Writer& w) const {
  w.U8(static_cast<uint8_t>(kind));
  w.Bytes(data);
  w.Ids(nested_refs);
}

Status ObjectValue::Decode(Reader& r) {
  uint8_t k;
  QUANTA_RETURN_IF_ERROR(r.U8(&k));
  if (k >= static_cast<uint8_t>(ObjectKind::kKindCount)) {
    return Status::ProtocolError("unknown object kind " + std::to_string(k));
  }
  kind = static_cast<ObjectKind>(k);
  QUANTA_RETURN_IF_ERROR(r.Bytes(&data));
  if (kind == ObjectKind::kStored && data.size() != StoredLocation::kEncodedSize) {
    return Status::ProtocolError("a stored object's location must be " +
                                 std::to_string(StoredLocation::kEncodedSize) + " bytes");
  }
  return r.Ids(&nested_refs);
}

void Hello::Encode(Writer& w) const {
  w.U8(static_cast<uint8_t>(role));
  w.Bytes(worker_token);
  w.U32(pid);
  w.U8(log_to_driver);
}

Status Hello::Decode(Reader& r) {
  uint8_t ro;
  QUANTA_RETURN_IF_ERROR(r.U8(&ro));
  if (ro < 1 || ro > 3) return Status::ProtocolError("unknown client role " + std::to_string(ro));
  role = static_cast<ClientRole>(ro);
  QUANTA_RETURN_IF_ERROR(r.Bytes(&worker_token));
  if (worker_token.size() > 64) return Status::ProtocolError("worker token too long");
  QUANTA_RETURN_IF_ERROR(r.U32(&pid));
  return r.Bool(&log_to_driver);
}

void HelloReply::Encode(Writer& w) const {
  w.U64(client_id);
  w.Bytes(node_id);
  w.Bytes(session_dir);
  w.Bytes(store_path);
  w.U64(store_size);
  w.U64(inline_threshold);
  w.U64(cluster_id);
}

Status HelloReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&client_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&node_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&session_dir));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&store_path));
  QUANTA_RETURN_IF_ERROR(r.U64(&store_size));
  QUANTA_RETURN_IF_ERROR(r.U64(&inline_threshold));
  return r.U64(&cluster_id);
}

void CreateObject::Encode(Writer& w) const {
  w.U64(request_id);
  w.Id(object_id);
  w.U64(size);
}

Status CreateObject::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  return r.U64(&size);
}

void CreateObjectReply::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(ok);
  w.U64(offset);
  w.Bytes(error);
}

Status CreateObjectReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.U64(&offset));
  return r.Bytes(&error);
}

void StoreStatsReply::Encode(Writer& w) const {
  for (uint64_t v : {request_id, capacity, used, num_in_memory, num_spilled, spilled_bytes, num_pinned,
                     total_spilled, total_restored, num_inline, inline_bytes, total_evicted, num_secondary}) {
    w.U64(v);
  }
  w.U32(static_cast<uint32_t>(objects.size()));
  for (const auto& o : objects) {
    w.Id(o.id);
    w.U64(o.size);
    w.U8(o.where);
    w.I64(o.refs);
    w.I64(o.pins);
  }
}

Status StoreStatsReply::Decode(Reader& r) {
  for (uint64_t* v : {&request_id, &capacity, &used, &num_in_memory, &num_spilled, &spilled_bytes, &num_pinned,
                      &total_spilled, &total_restored, &num_inline, &inline_bytes, &total_evicted, &num_secondary}) {
    QUANTA_RETURN_IF_ERROR(r.U64(v));
  }
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, ObjectID::kSize + 25));
  objects.resize(n);
  for (auto& o : objects) {
    QUANTA_RETURN_IF_ERROR(r.Id(&o.id));
    QUANTA_RETURN_IF_ERROR(r.U64(&o.size));
    QUANTA_RETURN_IF_ERROR(r.U8(&o.where));
    QUANTA_RETURN_IF_ERROR(r.I64(&o.refs));
    QUANTA_RETURN_IF_ERROR(r.I64(&o.pins));
  }
  return Status::Ok();
}

void RegisterFunction::Encode(Writer& w) const {
  w.Bytes(function_id);
  w.Bytes(payload);
}

Status RegisterFunction::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Bytes(&function_id));
  return r.Bytes(&payload);
}

void ActorOptions::Encode(Writer& w) const {
  w.U32(max_concurrency);
  w.I32(max_restarts);
  w.U8(detached);
  w.U8(is_async);
  w.Bytes(class_name);
  EncodeResources(w, lifetime_resources);
  w.U32(static_cast<uint32_t>(concurrency_groups.size()));
  for (const auto& [name, limit] : concurrency_groups) {
    w.Bytes(name);
    w.U32(limit);
  }
}

Status ActorOptions::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&max_concurrency));
  if (max_concurrency == 0) return Status::ProtocolError("max_concurrency must be >= 1");
  QUANTA_RETURN_IF_ERROR(r.I32(&max_restarts));
  QUANTA_RETURN_IF_ERROR(r.Bool(&detached));
  QUANTA_RETURN_IF_ERROR(r.Bool(&is_async));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&class_name));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &lifetime_resources));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8));
  concurrency_groups.resize(n);
  for (auto& [name, limit] : concurrency_groups) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
    QUANTA_RETURN_IF_ERROR(r.U32(&limit));
    if (name.empty() || limit == 0) return Status::ProtocolError("a concurrency group needs a name and a limit >= 1");
  }
  return Status::Ok();
}

void TaskSpec::Encode(Writer& w) const {
  w.Id(task_id);
  w.U8(static_cast<uint8_t>(kind));
  if (kind != TaskKind::kNormal) w.Id(actor_id);
  if (kind == TaskKind::kActorMethod) {
    w.Bytes(method);
    w.Bytes(concurrency_group);
  }
  if (kind == TaskKind::kActorCreation) actor.Encode(w);
  w.U64(job_id);
  w.Bytes(function_id);
  w.Bytes(name);
  w.Bytes(args_blob);
  w.Ids(arg_refs);
  w.Ids(nested_refs);
  w.U32(num_returns);
  EncodeResources(w, resources);
  w.I32(max_retries);
  w.U8(retry_exceptions);
  w.Bytes(retry_exception_types);
  w.U32(timeout_ms);
  scheduling.Encode(w);
  w.U8(generator);
  w.U32(generator_backpressure);
  w.U32(attempt);
  w.I32(priority);
  w.Bytes(runtime_env_hash);
  w.Bytes(runtime_env);
}

void GeneratorItem::Encode(Writer& w) const {
  w.Id(task_id);
  w.U64(index);
  value.Encode(w);
  w.U64(handoff);
}

Status GeneratorItem::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&index));
  if (index >= kMaxItems) return Status::ProtocolError("generator item index out of range");
  QUANTA_RETURN_IF_ERROR(value.Decode(r));
  return r.U64(&handoff);
}

namespace {
void EncodeLabelMap(Writer& w, const LabelMap& m) {
  w.U32(static_cast<uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    w.Bytes(k);
    w.Bytes(v);
  }
}
Status DecodeLabelMap(Reader& r, LabelMap* m) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8));
  m->resize(n);
  for (auto& [k, v] : *m) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&k));
    QUANTA_RETURN_IF_ERROR(r.Bytes(&v));
  }
  return Status::Ok();
}
}  // namespace

void SchedulingStrategy::Encode(Writer& w) const {
  w.U8(static_cast<uint8_t>(kind));
  if (kind == Kind::kDefault || kind == Kind::kSpread) return;
  w.Bytes(node_id);
  w.U8(soft);
  EncodeLabelMap(w, hard);
  EncodeLabelMap(w, soft_labels);
}

Status SchedulingStrategy::Decode(Reader& r) {
  uint8_t k;
  QUANTA_RETURN_IF_ERROR(r.U8(&k));
  if (k > 3) return Status::ProtocolError("unknown scheduling strategy " + std::to_string(k));
  kind = static_cast<Kind>(k);
  if (kind == Kind::kDefault || kind == Kind::kSpread) return Status::Ok();
  QUANTA_RETURN_IF_ERROR(r.Bytes(&node_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&soft));
  QUANTA_RETURN_IF_ERROR(DecodeLabelMap(r, &hard));
  return DecodeLabelMap(r, &soft_labels);
}

Status TaskSpec::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  uint8_t k;
  QUANTA_RETURN_IF_ERROR(r.U8(&k));
  if (k > 2) return Status::ProtocolError("unknown task kind " + std::to_string(k));
  kind = static_cast<TaskKind>(k);
  if (kind != TaskKind::kNormal) QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  if (kind == TaskKind::kActorMethod) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&method));
    QUANTA_RETURN_IF_ERROR(r.Bytes(&concurrency_group));
  }
  if (kind == TaskKind::kActorCreation) QUANTA_RETURN_IF_ERROR(actor.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&function_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&args_blob));
  QUANTA_RETURN_IF_ERROR(r.Ids(&arg_refs));
  QUANTA_RETURN_IF_ERROR(r.Ids(&nested_refs));
  QUANTA_RETURN_IF_ERROR(r.U32(&num_returns));
  if (num_returns > 100000) return Status::ProtocolError("num_returns too large");
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &resources));
  QUANTA_RETURN_IF_ERROR(r.I32(&max_retries));
  QUANTA_RETURN_IF_ERROR(r.Bool(&retry_exceptions));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&retry_exception_types));
  QUANTA_RETURN_IF_ERROR(r.U32(&timeout_ms));
  QUANTA_RETURN_IF_ERROR(scheduling.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.U8(&generator));
  if (generator > kDynamic) return Status::ProtocolError("unknown generator mode " + std::to_string(generator));
  QUANTA_RETURN_IF_ERROR(r.U32(&generator_backpressure));
  if (generator != kNoGenerator && num_returns != 1) return Status::ProtocolError("a streaming generator task has one return");
  QUANTA_RETURN_IF_ERROR(r.U32(&attempt));
  QUANTA_RETURN_IF_ERROR(r.I32(&priority));
  if (priority > kMaxPriority || priority < -kMaxPriority) {
    return Status::ProtocolError("task priority " + std::to_string(priority) + " out of range");
  }
  QUANTA_RETURN_IF_ERROR(r.Bytes(&runtime_env_hash));
  if (runtime_env_hash.size() > kMaxRuntimeEnvHash) return Status::ProtocolError("runtime_env hash too long");
  QUANTA_RETURN_IF_ERROR(r.Bytes(&runtime_env));
  if (runtime_env.size() > kMaxRuntimeEnv) return Status::ProtocolError("runtime_env too large");
  if (runtime_env_hash.empty() != runtime_env.empty()) return Status::ProtocolError("runtime_env without its hash");
  return Status::Ok();
}

void PutObject::Encode(Writer& w) const {
  w.Id(object_id);
  value.Encode(w);
}

Status PutObject::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  return value.Decode(r);
}

void RefDeltas::Encode(Writer& w) const {
  w.U32(static_cast<uint32_t>(deltas.size()));
  for (const auto& [id, d] : deltas) {
    w.Id(id);
    w.I32(d);
  }
}

Status RefDeltas::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, ObjectID::kSize + 4));
  deltas.resize(n);
  for (auto& [id, d] : deltas) {
    QUANTA_RETURN_IF_ERROR(r.Id(&id));
    QUANTA_RETURN_IF_ERROR(r.I32(&d));
  }
  return Status::Ok();
}

void TaskDone::Encode(Writer& w) const {
  w.Id(task_id);
  w.U32(static_cast<uint32_t>(returns.size()));
  for (const auto& v : returns) v.Encode(w);
  w.U8(retryable);
  w.Bytes(error);
}

Status TaskDone::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&task_id));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 9));
  returns.resize(n);
  for (auto& v : returns) QUANTA_RETURN_IF_ERROR(v.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.Bool(&retryable));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&error));
  if (error.size() > (64u << 10)) return Status::ProtocolError("TaskDone error text too long");
  return Status::Ok();
}

void CancelTask::Encode(Writer& w) const {
  w.Id(object_id);
  w.U8(force);
  w.U8(recursive);
}

Status CancelTask::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&force));
  return r.Bool(&recursive);
}

void KillActor::Encode(Writer& w) const {
  w.Id(actor_id);
  w.U8(no_restart);
}

Status KillActor::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  return r.Bool(&no_restart);
}

void ActorName::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(static_cast<uint8_t>(op));
  w.Bytes(name);
  w.Bytes(name_space);
  w.Id(actor_id);
  w.Bytes(handle_blob);
}

Status ActorName::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  uint8_t o;
  QUANTA_RETURN_IF_ERROR(r.U8(&o));
  if (o > 2) return Status::ProtocolError("unknown actor-name operation " + std::to_string(o));
  op = static_cast<ActorNameOp>(o);
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name_space));
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  return r.Bytes(&handle_blob);
}

void ActorNameReply::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(ok);
  w.Bytes(handle_blob);
  w.Bytes(error);
}

Status ActorNameReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&handle_blob));
  return r.Bytes(&error);
}

void ObjectReady::Encode(Writer& w) const {
  w.Id(object_id);
  value.Encode(w);
}

Status ObjectReady::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&object_id));
  return value.Decode(r);
}

void ExecuteTask::Encode(Writer& w) const {
  spec.Encode(w);
  w.Bytes(function_payload);
  w.U32(static_cast<uint32_t>(args.size()));
  for (const auto& v : args) v.Encode(w);
  w.U32(static_cast<uint32_t>(gpus.size()));
  for (const auto& [id, share] : gpus) {
    w.Bytes(id);
    w.I64(share);
  }
}

Status ExecuteTask::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(spec.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&function_payload));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 9));
  args.resize(n);
  for (auto& v : args) QUANTA_RETURN_IF_ERROR(v.Decode(r));
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 12));
  gpus.resize(n);
  for (auto& [id, share] : gpus) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&id));
    QUANTA_RETURN_IF_ERROR(r.I64(&share));
  }
  return Status::Ok();
}

void LogLines::Encode(Writer& w) const {
  w.U32(pid);
  w.Bytes(task_name);
  w.U8(is_stderr);
  w.Bytes(text);
  w.Bytes(origin);
}

Status LogLines::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&pid));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&task_name));
  QUANTA_RETURN_IF_ERROR(r.Bool(&is_stderr));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&text));
  return r.Bytes(&origin);
}

void NodeStats::Encode(Writer& w) const {
  w.U64(request_id);
  w.U32(static_cast<uint32_t>(counters.size()));
  for (const auto& [name, value] : counters) {
    w.Bytes(name);
    w.I64(value);
  }
}

Status NodeStats::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 12));
  counters.resize(n);
  for (auto& [name, value] : counters) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
    QUANTA_RETURN_IF_ERROR(r.I64(&value));
  }
  return Status::Ok();
}

}  // namespace quanta::protocol
