#include "control/job_table.h"

#include <algorithm>

#include "control/rows.h"

namespace quanta {

namespace {
constexpr size_t kKeepFinished = 10000;
constexpr const char* kTable = "jobs";
}  // namespace

Result<size_t> JobTable::Restore() {
  if (store_ == nullptr) return size_t{0};
  auto rows = store_->Load(kTable);
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<uint64_t, uint64_t>> finished;  // (end time, id)
  for (const auto& [key, value] : rows.value()) {
    protocol::JobInfo j;
    Status st = DecodeRow(value, &j);
    if (!st.ok()) return Status::InvalidArgument("a corrupt row in table jobs of " + store_->Describe() + ": " + st.message());
    if (j.finished()) finished.emplace_back(j.end_time_ms, j.job_id);
    jobs_[j.job_id] = std::move(j);
  }
  std::sort(finished.begin(), finished.end());
  for (const auto& [end, id] : finished) finished_.push_back(id);
  return jobs_.size();
}

void JobTable::Persist(const protocol::JobInfo& j) {
  if (store_ != nullptr) store_->Write(kTable, U64Key(j.job_id), EncodeRow(j));
}

void JobTable::Started(protocol::JobInfo info) {
  Persist(info);
  jobs_[info.job_id] = std::move(info);
}

void JobTable::Finished(uint64_t job_id, uint64_t now_ms, bool failed) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.finished()) return;
  it->second.status = failed ? protocol::JobStatus::kFailed : protocol::JobStatus::kSucceeded;
  it->second.end_time_ms = now_ms;
  Persist(it->second);
  // Ids do not follow time across nodes (a node's index is in their high bits): the oldest
  // finished job is the one that finished first.
  finished_.push_back(job_id);
  if (finished_.size() > kKeepFinished) {
    auto oldest = jobs_.find(finished_.front());
    if (oldest != jobs_.end() && oldest->second.finished()) {  // not one started again
      if (store_ != nullptr) store_->Erase(kTable, U64Key(oldest->first));
      jobs_.erase(oldest);
    }
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
