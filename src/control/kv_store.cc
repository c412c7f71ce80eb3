#include "control/kv_store.h"

namespace quanta {

Result<bool> KvStore::Put(const std::string& ns, const std::string& key, std::string value, bool overwrite) {
  if (value.size() > kMaxValue) {
    return Status::InvalidArgument("a KV value may be at most 1 MiB (got " + std::to_string(value.size()) + " bytes)");
  }
  auto s = spaces_.find(ns);
  if (s != spaces_.end()) {
    auto it = s->second.find(key);
    if (it != s->second.end()) {
      if (overwrite) it->second = std::move(value);
      return false;
    }
  }
  // Refused before a namespace is made, so a full store gains no empty namespaces.
  if (count_ >= kMaxKeys) return Status::ResourceExhausted("the KV store holds its maximum of 100000 keys");
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
  } else {
    for (auto it = s->second.lower_bound(key); it != s->second.end() && it->first.rfind(key, 0) == 0;) {
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
