// Minimal command-line parsing for the daemons: `--name value` pairs, repeatable.
// The daemons are started by the Python launcher, so errors are reported plainly and fatal.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace quanta {

class Flags {
 public:
  // Parses argv; every flag must be `--name value`.
  static Result<Flags> Parse(int argc, char** argv);
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  // Boolean flags are passed as `--name 1`.
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  Result<long long> GetInt(const std::string& name, long long fallback) const;

 private:
  std::multimap<std::string, std::string> values_;
};

}  // namespace quanta
