// A TableStore in one SQLite file (Debian's libsqlite3): `quanta start --head --storage FILE`.
//
// One table of (tbl, key, value) rows. The file is in WAL mode with synchronous=NORMAL: each
// write is its own transaction, committed before Put returns, and survives the head process
// being killed at any point (SIGKILL, OOM); a power cut may lose the last few commits but never
// corrupts the file. Two heads on one file are refused (an exclusive lock is taken at open).
// The file is created mode 0600.
//
// Ownership: owns its connection. Thread-safety: one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "control/table_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace quanta {

class SqliteTableStore : public TableStore {
 public:
  static Result<std::unique_ptr<SqliteTableStore>> Open(const std::string& path);
  ~SqliteTableStore() override;

  Status Put(std::string_view table, std::string_view key, std::string_view value) override;
  Status Delete(std::string_view table, std::string_view key) override;
  Result<Rows> Load(std::string_view table) override;
  std::string Describe() const override { return "sqlite:" + path_; }

 private:
  explicit SqliteTableStore(std::string path) : path_(std::move(path)) {}
  Status Error(const std::string& what) const;
  Status Run(sqlite3_stmt* stmt, std::string_view table, std::string_view key, const std::string_view* value);

  std::string path_;
  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* load_ = nullptr;
};

}  // namespace quanta
