// The control service's durable copy of its tables (docs/cluster-design.md §11): what a
// restarted head reloads so that nodes, actors, names, jobs and the KV store survive it.
//
// A store holds named tables ("nodes", "actors", ...) of opaque byte keys and values. The
// control service writes through: every change of a table is one Put or Delete, done before the
// change is answered, so what a client was told is on disk (SQLite) or in Redis when the head
// dies. Two implementations: SqliteTableStore (a file, WAL) and RedisTableStore (a redis-server).
// A failed write is logged (at most every 10 s) and counted, and the change still takes effect
// in memory: the cluster goes on, only a later restart would miss it.
//
// Ownership: the ControlServer owns its store; tables hold a non-owning pointer (may be null:
// nothing is persisted). Thread-safety: one thread (the control service's loop) at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quanta {

class TableStore {
 public:
  using Rows = std::vector<std::pair<std::string, std::string>>;
  virtual ~TableStore() = default;

  virtual Status Put(std::string_view table, std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view table, std::string_view key) = 0;
  // Every row of `table`, in no particular order.
  virtual Result<Rows> Load(std::string_view table) = 0;
  // "sqlite:/path/file.db" or "redis://host:port", for logs and errors.
  virtual std::string Describe() const = 0;

  // Put/Delete whose failure is logged and counted rather than returned.
  void Write(std::string_view table, std::string_view key, std::string_view value);
  void Erase(std::string_view table, std::string_view key);
  uint64_t failed_writes() const { return failed_writes_; }

 private:
  void Failed(const Status& st);
  uint64_t failed_writes_ = 0;
  std::chrono::steady_clock::time_point last_logged_{};
};

// Opens the store a `--storage` value names: "redis://HOST:PORT" (Redis) or a file path
// (SQLite; created if missing). Fails with what was wrong, e.g. an unreachable redis-server.
Result<std::unique_ptr<TableStore>> OpenTableStore(const std::string& spec);

// Big-endian keys, so that rows sort by number in tools that list them.
std::string U32Key(uint32_t v);
std::string U64Key(uint64_t v);
uint64_t KeyU64(std::string_view key);  // U32Key or U64Key back to a number

}  // namespace quanta
