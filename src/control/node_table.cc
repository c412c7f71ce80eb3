#include "control/node_table.h"

#include <algorithm>

#include "control/rows.h"

namespace quanta {

namespace {
constexpr const char* kTable = "nodes";
}

Result<size_t> NodeTable::Restore(Clock::time_point rejoin_by) {
  if (store_ == nullptr) return size_t{0};
  auto rows = store_->Load(kTable);
  if (!rows.ok()) return rows.status();
  size_t waiting = 0;
  for (const auto& [key, value] : rows.value()) {
    Entry e;
    Status st = DecodeRow(value, &e.info);
    if (!st.ok() || e.info.node_index == 0) {
      return Status::InvalidArgument("a corrupt row in table nodes of " + store_->Describe() + ": " + st.message());
    }
    if (e.info.alive) {
      e.rejoin_by = rejoin_by;
      e.last_heard = rejoin_by;
      e.info.available.clear();  // unknown until it reports again
      ++waiting;
    }
    next_index_ = std::max(next_index_, e.info.node_index + 1);
    next_incarnation_ = std::max(next_incarnation_, e.info.incarnation + 1);
    nodes_[e.info.node_index] = std::move(e);
  }
  return waiting;
}

void NodeTable::Persist(const Entry& e) {
  if (store_ != nullptr) store_->Write(kTable, U32Key(e.info.node_index), EncodeRow(e.info));
}

Result<const protocol::NodeInfo*> NodeTable::Register(protocol::NodeInfo info, Clock::time_point now) {
  if (info.node_id.empty() || info.node_id.size() > 64) return Status::InvalidArgument("a node id of 1-64 bytes is required");
  if (info.node_index != 0) {
    // Rejoining after it lost us: only under the identity it had, and only if still alive.
    auto it = nodes_.find(info.node_index);
    if (it == nodes_.end() || it->second.info.node_id != info.node_id) {
      return Status::NotFound("the control service does not know node " + info.node_id + " (index " +
                              std::to_string(info.node_index) + "): it restarted without its tables, or "
                              "this node belongs to another cluster");
    }
    if (!it->second.info.alive) {
      return Status::NotFound("node " + info.node_id + " was declared dead (" + it->second.info.death_reason +
                              "); its work was failed over, so it cannot rejoin: start a new node");
    }
    info.incarnation = it->second.info.incarnation;
    info.alive = true;
    it->second.info = std::move(info);
    it->second.last_heard = now;
    it->second.rejoin_by = {};
    Persist(it->second);
    return &it->second.info;
  }
  if (FindById(info.node_id) != nullptr) return Status::InvalidArgument("node id " + info.node_id + " is already registered");
  info.node_index = next_index_++;
  info.incarnation = next_incarnation_++;
  info.alive = true;
  info.death_reason.clear();
  Entry& e = nodes_[info.node_index];
  e.info = std::move(info);
  e.last_heard = now;
  Persist(e);
  return &e.info;
}

void NodeTable::Heard(uint32_t index, Clock::time_point now) {
  auto it = nodes_.find(index);
  if (it != nodes_.end()) it->second.last_heard = now;
}

bool NodeTable::UpdateResources(uint32_t index, protocol::ResourceMap available, protocol::ResourceMap total) {
  auto it = nodes_.find(index);
  if (it == nodes_.end() || !it->second.info.alive) return false;
  it->second.info.available = std::move(available);
  if (!total.empty()) it->second.info.total = std::move(total);
  return true;
}

bool NodeTable::MarkDead(uint32_t index, std::string reason) {
  auto it = nodes_.find(index);
  if (it == nodes_.end() || !it->second.info.alive) return false;
  it->second.info.alive = false;
  it->second.info.available.clear();
  it->second.info.death_reason = std::move(reason);
  it->second.rejoin_by = {};
  Persist(it->second);
  return true;
}

std::vector<uint32_t> NodeTable::Silent(Clock::time_point now, std::chrono::milliseconds timeout) const {
  std::vector<uint32_t> out;
  for (const auto& [index, e] : nodes_) {
    if (!e.info.alive) continue;
    bool silent = e.rejoin_by != Clock::time_point{} ? now > e.rejoin_by : now - e.last_heard > timeout;
    if (silent) out.push_back(index);
  }
  return out;
}

bool NodeTable::AwaitingRejoin(uint32_t index) const {
  auto it = nodes_.find(index);
  return it != nodes_.end() && it->second.info.alive && it->second.rejoin_by != Clock::time_point{};
}

size_t NodeTable::num_awaiting_rejoin() const {
  size_t n = 0;
  for (const auto& [index, e] : nodes_) n += AwaitingRejoin(index);
  return n;
}

const protocol::NodeInfo* NodeTable::Find(uint32_t index) const {
  auto it = nodes_.find(index);
  return it == nodes_.end() ? nullptr : &it->second.info;
}

const protocol::NodeInfo* NodeTable::FindById(const std::string& node_id) const {
  for (const auto& [index, e] : nodes_) {
    if (e.info.node_id == node_id) return &e.info;
  }
  return nullptr;
}

std::vector<protocol::NodeInfo> NodeTable::All() const {
  std::vector<protocol::NodeInfo> out;
  out.reserve(nodes_.size());
  for (const auto& [index, e] : nodes_) out.push_back(e.info);
  return out;
}

size_t NodeTable::num_alive() const {
  size_t n = 0;
  for (const auto& [index, e] : nodes_) n += e.info.alive;
  return n;
}

}  // namespace quanta
