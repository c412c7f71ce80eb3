// The functions and classes registered on this node (cloudpickled payloads by content hash).
// Workers get a payload with their first task of that function.
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <string>
#include <unordered_map>

namespace quanta {

class FunctionTable {
 public:
  // Returns true if the id was new (the caller then tells the control service).
  bool Add(std::string id, std::string payload) { return functions_.emplace(std::move(id), std::move(payload)).second; }
  const std::string* Find(const std::string& id) const {
    auto it = functions_.find(id);
    return it == functions_.end() ? nullptr : &it->second;
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [id, payload] : functions_) f(id, payload);
  }
  size_t size() const { return functions_.size(); }

 private:
  std::unordered_map<std::string, std::string> functions_;
};

}  // namespace quanta
