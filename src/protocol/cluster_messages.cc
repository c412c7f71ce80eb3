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
  w.Bytes(error);
}

Status RegisterNodeReply::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.Bool(&ok));
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  QUANTA_RETURN_IF_ERROR(r.U64(&cluster_id));
  QUANTA_RETURN_IF_ERROR(r.U64(&incarnation));
  QUANTA_RETURN_IF_ERROR(r.U32(&heartbeat_interval_ms));
  QUANTA_RETURN_IF_ERROR(r.U32(&heartbeat_timeout_ms));
  return r.Bytes(&error);
}

void ResourceUpdate::Encode(Writer& w) const {
  w.U32(node_index);
  EncodeResources(w, available);
}

Status ResourceUpdate::Decode(Reader& r) {
  QUANTA_RETURN_IF_ERROR(r.U32(&node_index));
  return DecodeResources(r, &available);
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
  w.U32(static_cast<uint32_t>(available.size()));
  for (const auto& [index, res] : available) {
    w.U32(index);
    EncodeResources(w, res);
  }
}

Status ResourceView::Decode(Reader& r) {
  uint32_t n;
  QUANTA_RETURN_IF_ERROR(r.Count(&n, 8));
  available.resize(n);
  for (auto& [index, res] : available) {
    QUANTA_RETURN_IF_ERROR(r.U32(&index));
    QUANTA_RETURN_IF_ERROR(DecodeResources(r, &res));
  }
  return Status::Ok();
}

}  // namespace quanta::protocol
