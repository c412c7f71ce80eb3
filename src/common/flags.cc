#include "common/flags.h"

#include <cstdlib>

namespace quanta {

Result<Flags> Flags::Parse(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; i += 2) {
    std::string name = argv[i];
    if (name.rfind("--", 0) != 0 || i + 1 >= argc) {
      return Status::InvalidArgument("expected `--flag value`, got `" + name + "`");
    }
    flags.values_.emplace(name.substr(2), argv[i + 1]);
  }
  return flags;
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> Flags::GetAll(const std::string& name) const {
  std::vector<std::string> out;
  auto [b, e] = values_.equal_range(name);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

Result<long long> Flags::GetInt(const std::string& name, long long fallback) const {
  std::string v = Get(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (*end != '\0') return Status::InvalidArgument("--" + name + " expects an integer, got " + v);
  return n;
}

}  // namespace quanta
