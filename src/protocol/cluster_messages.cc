#include "protocol/cluster_messages.h"

namespace quanta::protocol {

namespace {

void EncodeLabels(Writer& w, const Labels& labels) {
  w.U32(static_cast<uint32_t>(labels.size()));
  for (const auto& [k, v] : labels) {
    w.Bytes(k);
    w.Bytes(v);
  }
}

Status DecodeLabels(Reader& r, Labels* labels) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8));
  labels->resize(n);
  for (auto& [k, v] : *labels) {
    QUANTA_RETURN_IF_ERROR(r.Bytes(&k));
    QUANTA_RETURN_IF_ERROR(r.Bytes(&v));
  }
  return Status::Ok();
}

}  // namespace

void NodeInfo::Encode(Writer& w) const {
  w.Bytes(node_id);
  w.U32(node_index);
  w.Bytes(address);
  w.U32(port);
  w.Bytes(socket_path);
  w.Bytes(session_dir);
  w.U8(alive);
  EncodeResources(w, total);
  EncodeResources(w, available);
  EncodeLabels(w, labels);
  w.U64(start_time_ms);
  w.U64(incarnation);
  w.U8(flags);
  w.Bytes(death_reason);
}

Status NodeInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Bytes(&node_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&address));
  QUANTA_RETURN_IF_ERROR(r.U32(&port));
  if (port > 65535) return Status::ProtocolError("port out of range");
  QUANTA_RETURN_IF_ERROR(r.Bytes(&socket_path));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&session_dir));
  QUANTA_RETURN_IF_ERROR(r.Bool(&alive));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &total));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &available));
  QUANTA_RETURN_IF_ERROR(DecodeLabels(r, &labels));
  QUANTA_RETURN_IF_ERROR(r.U64(&start_time_ms));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  QUANTA_RETURN_IF_ERROR(r.U8(&flags));
  return r.Bytes(&death_reason);
}

namespace {
constexpr size_t kMinNodeInfoBytes = 4 + 4 + 4 + 4 + 4 + 4 + 1 + 4 + 4 + 4 + 8 + 8 + 1 + 4;

void EncodeNodes(Writer& w, const std::vector<NodeInfo>& nodes) {
  w.U32(static_cast<uint32_t>(nodes.size()));
  for (const auto& n : nodes) n.Encode(w);
}

Status DecodeNodes(Reader& r, std::vector<NodeInfo>* nodes) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, kMinNodeInfoBytes));
  nodes->resize(n);
  for (auto& node : *nodes) QUANTA_RETURN_IF_ERROR(node.Decode(r));
  return Status::Ok();
}
}  // namespace

void ClusterInfo::Encode(Writer& w) const {
  w.U64(request_id);
  EncodeNodes(w, nodes);
}

Status ClusterInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  return DecodeNodes(r, &nodes);
}

void RegisterNodeReply::Encode(Writer& w) const {
  w.U8(ok);
  w.U32(node_index);
  w.U64(cluster_id);
  w.U64(incarnation);
  w.U32(heartbeat_interval_ms);
  w.U32(heartbeat_timeout_ms);
  w.U32(reconnect_timeout_ms);
  w.Bytes(error);
}

Status RegisterNodeReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U64(&cluster_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  QUANTA_RETURN_IF_ERROR(r.U32(&heartbeat_interval_ms));
  QUANTA_RETURN_IF_ERROR(r.U32(&heartbeat_timeout_ms));
  QUANTA_RETURN_IF_ERROR(r.U32(&reconnect_timeout_ms));
  return r.Bytes(&error);
}

void ResourceUpdate::Encode(Writer& w) const {
  w.U32(node_index);
  EncodeResources(w, available);
  EncodeResources(w, total);
}

Status ResourceUpdate::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(DecodeResources(r, &available));
  return DecodeResources(r, &total);
}

void NodeTable::Encode(Writer& w) const {
  w.U8(full);
  EncodeNodes(w, nodes);
}

Status NodeTable::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Bool(&full));
  return DecodeNodes(r, &nodes);
}

void ResourceView::Encode(Writer& w) const {
  w.U32(static_cast<uint32_t>(nodes.size()));
  for (const auto& e : nodes) {
    w.U32(e.node_index);
    EncodeResources(w, e.available);
    EncodeResources(w, e.total);
  }
}

Status ResourceView::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 12));
  nodes.resize(n);
  for (auto& e : nodes) {
    QUANTA_RETURN_IF_ERROR(r.U32(&e.node_index));
    QUANTA_RETURN_IF_ERROR(DecodeResources(r, &e.available));
    QUANTA_RETURN_IF_ERROR(DecodeResources(r, &e.total));
  }
  return Status::Ok();
}

void PlacementGroupSpec::Encode(Writer& w) const {
  w.Id(id);
  w.Bytes(name);
  w.Bytes(name_space);
  w.U8(static_cast<uint8_t>(strategy));
  w.U32(static_cast<uint32_t>(bundles.size()));
  for (const auto& b : bundles) EncodeResources(w, b);
  w.U8(detached);
  w.U64(job_id);
}

Status PlacementGroupSpec::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name_space));
  uint8_t s;
  QUANTA_RETURN_IF_ERROR(r.U8(&s));
  if (s > 3) return Status::ProtocolError("unknown placement strategy " + std::to_string(s));
  strategy = static_cast<PlacementStrategy>(s);
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4));
  if (n == 0) return Status::ProtocolError("a placement group needs at least one bundle");
  bundles.resize(n);
  for (auto& b : bundles) QUANTA_RETURN_IF_ERROR(DecodeResources(r, &b));
  QUANTA_RETURN_IF_ERROR(r.Bool(&detached));
  return r.U64(&job_id);
}

void PlacementGroupInfo::Encode(Writer& w) const {
  spec.Encode(w);
  w.U8(static_cast<uint8_t>(state));
  w.U32(static_cast<uint32_t>(bundle_nodes.size()));
  for (uint32_t n : bundle_nodes) w.U32(n);
  w.Bytes(message);
}

Status PlacementGroupInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(spec.Decode(r));
  uint8_t s;
  QUANTA_RETURN_IF_ERROR(r.U8(&s));
  if (s > 3) return Status::ProtocolError("unknown placement group state");
  state = static_cast<State>(s);
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4));
  bundle_nodes.resize(n);
  for (auto& x : bundle_nodes) QUANTA_RETURN_IF_ERROR(r.U32(&x));
  return r.Bytes(&message);
}

void PlacementGroupQuery::Encode(Writer& w) const {
  w.U64(request_id);
  w.Id(id);
  w.Bytes(name);
  w.Bytes(name_space);
}

Status PlacementGroupQuery::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Id(&id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
  return r.Bytes(&name_space);
}

void PlacementGroups::Encode(Writer& w) const {
  w.U64(request_id);
  w.U32(static_cast<uint32_t>(groups.size()));
  for (const auto& g : groups) g.Encode(w);
}

Status PlacementGroups::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 40));
  groups.resize(n);
  for (auto& g : groups) QUANTA_RETURN_IF_ERROR(g.Decode(r));
  return Status::Ok();
}

void BundleReservation::Encode(Writer& w) const {
  w.Id(group);
  w.U32(static_cast<uint32_t>(bundles.size()));
  for (const auto& [index, res] : bundles) {
    w.U32(index);
    EncodeResources(w, res);
  }
  w.U8(removed);
}

Status BundleReservation::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&group));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8));
  bundles.resize(n);
  for (auto& [index, res] : bundles) {
    QUANTA_RETURN_IF_ERROR(r.U32(&index));
    QUANTA_RETURN_IF_ERROR(DecodeResources(r, &res));
  }
  return r.Bool(&removed);
}

void BundlesReserved::Encode(Writer& w) const {
  w.Id(group);
  w.U8(ok);
  w.Bytes(error);
}

Status BundlesReserved::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&group));
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  return r.Bytes(&error);
}

void ActorInfo::Encode(Writer& w) const {
  w.Id(actor_id);
  w.U8(static_cast<uint8_t>(state));
  w.U32(node_index);
  w.U32(owner_node);
  w.U64(job_id);
  w.Bytes(class_name);
  w.Bytes(name);
  w.Bytes(name_space);
  w.U8(detached);
  w.U32(restarts);
  w.U8(restartable);
  w.Bytes(death_reason);
}

Status ActorInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Id(&actor_id));
  uint8_t s;
  QUANTA_RETURN_IF_ERROR(r.U8(&s));
  if (s > 4) return Status::ProtocolError("unknown actor state " + std::to_string(s));
  state = static_cast<State>(s);
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U32(&owner_node));
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&class_name));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&name_space));
  QUANTA_RETURN_IF_ERROR(r.Bool(&detached));
  QUANTA_RETURN_IF_ERROR(r.U32(&restarts));
  QUANTA_RETURN_IF_ERROR(r.Bool(&restartable));
  return r.Bytes(&death_reason);
}

void ControlRequest::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(static_cast<uint8_t>(op));
  w.Bytes(key);
  w.Bytes(value);
  w.Bytes(arg);
  w.Bytes(blob);
  w.U8(flag);
}

Status ControlRequest::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  uint8_t o;
  QUANTA_RETURN_IF_ERROR(r.U8(&o));
  op = static_cast<ControlOp>(o);
  QUANTA_RETURN_IF_ERROR(r.Bytes(&key));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&value));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&arg));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&blob));
  return r.Bool(&flag);
}

void ControlReply::Encode(Writer& w) const {
  w.U64(request_id);
  w.U8(ok);
  w.U8(flag);
  w.U64(count);
  w.Bytes(blob);
  w.Bytes(error);
  w.U32(static_cast<uint32_t>(items.size()));
  for (const auto& i : items) w.Bytes(i);
}

Status ControlReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&request_id));
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.Bool(&flag));
  QUANTA_RETURN_IF_ERROR(r.U64(&count));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&blob));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&error));
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 4));
  items.resize(n);
  for (auto& i : items) QUANTA_RETURN_IF_ERROR(r.Bytes(&i));
  return Status::Ok();
}

void JobInfo::Encode(Writer& w) const {
  w.U64(job_id);
  w.U32(node_index);
  w.U32(driver_pid);
  w.Bytes(entrypoint);
  w.U64(start_time_ms);
  w.U64(end_time_ms);
  w.U8(static_cast<uint8_t>(status));
}

Status JobInfo::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U64(&job_id));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U32(&driver_pid));
  QUANTA_RETURN_IF_ERROR(r.Bytes(&entrypoint));
  QUANTA_RETURN_IF_ERROR(r.U64(&start_time_ms));
  QUANTA_RETURN_IF_ERROR(r.U64(&end_time_ms));
  uint8_t s;
  QUANTA_RETURN_IF_ERROR(r.U8(&s));
  if (s > static_cast<uint8_t>(JobStatus::kFailed)) return Status::ProtocolError("unknown job status");
  status = static_cast<JobStatus>(s);
  return Status::Ok();
}

}  // namespace quanta::protocol
