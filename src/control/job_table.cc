#include "control/job_table.h"

namespace quanta {

namespace {
constexpr size_t kKeepFinished = 10000;
}

void JobTable::Started(protocol::JobInfo info) { jobs_[info.job_id] = std::move(info); }

void JobTable::Finished(uint64_t job_id, uint64_t now_ms, bool failed) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.finished()) return;
  it->second.status = failed ? protocol::JobStatus::kFailed : protocol::JobStatus::kSucceeded;
  it->second.end_time_ms = now_ms;
  // Ids do not follow time across nodes (a node's index is in their high bits): the oldest
  // finished job is the one that finished first.
  finished_.push_back(job_id);
  if (finished_.size() > kKeepFinished) {
    auto oldest = jobs_.find(finished_.front());
    if (oldest != jobs_.end() && oldest->second.finished()) jobs_.erase(oldest);  // not one started again
    finished_.pop_front();
  }
}

std::vector<uint64_t> JobTable::OnNodeDead(uint32_t node, uint64_t now_ms) {
  std::vector<uint64_t> out;
  for (auto& [id, j] : jobs_) {
    if (j.node_index == node && !j.finished()) out.push_back(id);
  }
  for (uint64_t id : out) Finished(id, now_ms, true);
  return out;
}

std::vector<protocol::JobInfo> JobTable::All() const {
  std::vector<protocol::JobInfo> out;
  for (const auto& [id, j] : jobs_) out.push_back(j);
  return out;
}

}  // namespace quanta
