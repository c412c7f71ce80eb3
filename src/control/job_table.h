// The cluster's jobs: one per driver (id, node, entrypoint, start and end time, status).
// Finished jobs beyond the 10,000 that finished last are dropped. The one place the table changes.
// With a TableStore, every change is written through (table "jobs", by id) and Restore reloads it.
// Ownership: owned by the ControlServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "control/table_store.h"
#include "protocol/cluster_messages.h"

namespace quanta {

class JobTable {
 public:
  explicit JobTable(TableStore* store = nullptr) : store_(store) {}
  // Reloads the table from the store; returns how many jobs.
  Result<size_t> Restore();
  void Started(protocol::JobInfo info);
  // The driver disconnected (succeeded) or its node died (failed).
  void Finished(uint64_t job_id, uint64_t now_ms, bool failed = false);
  // Every job of a dead node whose driver has not been reported finished.
  std::vector<uint64_t> OnNodeDead(uint32_t node, uint64_t now_ms);
  std::vector<protocol::JobInfo> All() const;

 private:
  void Persist(const protocol::JobInfo& j);

  TableStore* store_;
  std::map<uint64_t, protocol::JobInfo> jobs_;  // by id
  std::deque<uint64_t> finished_;  // finished jobs' ids, in the order they finished
};

}  // namespace quanta
