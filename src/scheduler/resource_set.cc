#include "scheduler/resource_set.h"

#include <sstream>

namespace quanta {

ResourceSet::ResourceSet(const protocol::ResourceMap& m) {
  for (const auto& [name, amount] : m) Set(name, Get(name) + amount);
}

int64_t ResourceSet::Get(const std::string& name) const {
  auto it = amounts_.find(name);
  return it == amounts_.end() ? 0 : it->second;
}

void ResourceSet::Set(const std::string& name, int64_t amount) {
  if (amount == 0) {
    amounts_.erase(name);
  } else {
    amounts_[name] = amount;
  }
}

bool ResourceSet::Contains(const ResourceSet& demand) const {
  for (const auto& [name, amount] : demand.amounts_) {
    if (Get(name) < amount) return false;
  }
  return true;
}

void ResourceSet::Add(const ResourceSet& other) {
  for (const auto& [name, amount] : other.amounts_) Set(name, Get(name) + amount);
}

void ResourceSet::Subtract(const ResourceSet& other) {
  for (const auto& [name, amount] : other.amounts_) Set(name, Get(name) - amount);
}

std::string FormatAmount(int64_t v) {
  // Exact decimal rendering of the fixed-point value: integer part, then up to 4 decimals.
  std::string out = v < 0 ? "-" : "";
  uint64_t a = v < 0 ? static_cast<uint64_t>(-v) : static_cast<uint64_t>(v);
  out += std::to_string(a / protocol::kResourceUnit);
  uint64_t frac = a % protocol::kResourceUnit;
  if (frac != 0) {
    std::string digits = std::to_string(frac + protocol::kResourceUnit).substr(1);  // zero-padded
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

std::string ResourceSet::DescribeShortfall(const ResourceSet& demand) const {
  std::string out;
  for (const auto& [name, amount] : demand.amounts_) {
    if (Get(name) >= amount) continue;
    if (!out.empty()) out += ", ";
    out += name + ": " + FormatAmount(amount) + " (the node has " + FormatAmount(Get(name)) + ")";
  }
  return out;
}

std::string ResourceSet::ToString() const {
  std::string out = "{";
  for (const auto& [name, amount] : amounts_) {
    if (out.size() > 1) out += ", ";
    out += name + ": " + FormatAmount(amount);
  }
  return out + "}";
}

protocol::ResourceMap ResourceSet::ToMap() const {
  protocol::ResourceMap m;
  for (const auto& [name, amount] : amounts_) m.emplace_back(name, amount < 0 ? 0 : amount);
  return m;
}

}  // namespace quanta
