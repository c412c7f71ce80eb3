#include "control/kv_store.h"

namespace quanta {

namespace {
constexpr const char* kTable = "kv";

// Row key: the namespace's length, the namespace, the key (either may hold any byte).
std::string RowKey(const std::string& ns, const std::string& key) { return U32Key(static_cast<uint32_t>(ns.size())) + ns + key; }
}  // namespace

Result<size_t> KvStore::Restore() {
  if (store_ == nullptr) return size_t{0};
  auto rows = store_->Load(kTable);
  if (!rows.ok()) return rows.status();
  for (auto& [row_key, value] : rows.value()) {
    uint64_t ns_len = row_key.size() >= 4 ? KeyU64(std::string_view(row_key).substr(0, 4)) : ~uint64_t{0};
    if (ns_len > row_key.size() - 4) return Status::InvalidArgument("a corrupt row in table kv of " + store_->Describe());
    auto [it, added] = spaces_[row_key.substr(4, ns_len)].insert_or_assign(row_key.substr(4 + ns_len), std::move(value));
    count_ += added;
  }
  return count_;
}

Result<bool> KvStore::Put(const std::string& ns, const std::string& key, std::string value, bool overwrite) {
  if (value.size() > kMaxValue) {
    return Status::InvalidArgument("a KV value may be at most 1 MiB (got " + std::to_string(value.size()) + " bytes)");
  }
  auto s = spaces_.find(ns);
  if (s != spaces_.end()) {
    auto it = s->second.find(key);
    if (it != s->second.end()) {
      if (overwrite) {
        if (store_ != nullptr) store_->Write(kTable, RowKey(ns, key), value);
        it->second = std::move(value);
      }
      return false;
    }
  }
  // Refused before a namespace is made, so a full store gains no empty namespaces.
  if (count_ >= kMaxKeys) return Status::ResourceExhausted("the KV store holds its maximum of 100000 keys");
  if (store_ != nullptr) store_->Write(kTable, RowKey(ns, key), value);
  spaces_[ns].emplace(key, std::move(value));
  ++count_;
  return true;
}

const std::string* KvStore::Get(const std::string& ns, const std::string& key) const {
  auto s = spaces_.find(ns);
  if (s == spaces_.end()) return nullptr;
  auto it = s->second.find(key);
  return it == s->second.end() ? nullptr : &it->second;
}

uint64_t KvStore::Delete(const std::string& ns, const std::string& key, bool by_prefix) {
  auto s = spaces_.find(ns);
  if (s == spaces_.end()) return 0;
  uint64_t n = 0;
  if (!by_prefix) {
    n = s->second.erase(key);
    if (n > 0 && store_ != nullptr) store_->Erase(kTable, RowKey(ns, key));
  } else {
    for (auto it = s->second.lower_bound(key); it != s->second.end() && it->first.rfind(key, 0) == 0;) {
      if (store_ != nullptr) store_->Erase(kTable, RowKey(ns, it->first));
      it = s->second.erase(it);
      ++n;
    }
  }
  count_ -= n;
  if (s->second.empty()) spaces_.erase(s);  // namespaces live only while they hold keys
  return n;
}

std::vector<std::string> KvStore::List(const std::string& ns, const std::string& prefix) const {
  std::vector<std::string> out;
  auto s = spaces_.find(ns);
  if (s == spaces_.end()) return out;
  for (auto it = s->second.lower_bound(prefix); it != s->second.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    out.push_back(it->first);
  }
  return out;
}

}  // namespace quanta
