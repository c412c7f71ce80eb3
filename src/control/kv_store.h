// The cluster's small key-value store (Ray's _internal_kv_*), per namespace.
// Bounded: values up to 1 MiB, 100,000 keys in all; over that a put is refused.
// With a TableStore, every put and delete is written through (table "kv") and Restore reloads it.
// Ownership: owned by the ControlServer; the one place it changes. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "control/table_store.h"

namespace quanta {

class KvStore {
 public:
  static constexpr size_t kMaxValue = 1u << 20;
  static constexpr size_t kMaxKeys = 100000;

  explicit KvStore(TableStore* store = nullptr) : store_(store) {}
  // Reloads every key from the store; returns how many.
  Result<size_t> Restore();

  // True if the key was added (false: it existed; replaced only when `overwrite`).
  Result<bool> Put(const std::string& ns, const std::string& key, std::string value, bool overwrite);
  const std::string* Get(const std::string& ns, const std::string& key) const;
  // Deletes the key, or every key starting with it; returns how many went.
  uint64_t Delete(const std::string& ns, const std::string& key, bool by_prefix);
  std::vector<std::string> List(const std::string& ns, const std::string& prefix) const;
  size_t size() const { return count_; }
  size_t num_namespaces() const { return spaces_.size(); }

 private:
  TableStore* store_;
  std::map<std::string, std::map<std::string, std::string>> spaces_;
  size_t count_ = 0;
};

}  // namespace quanta
