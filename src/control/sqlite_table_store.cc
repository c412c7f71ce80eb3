#include "control/sqlite_table_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

namespace quanta {

Result<std::unique_ptr<SqliteTableStore>> SqliteTableStore::Open(const std::string& path) {
  std::unique_ptr<SqliteTableStore> s(new SqliteTableStore(path));
  // SQLite's own locks let a second writer in between transactions; a head needs the file alone.
  s->lock_fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->lock_fd_ < 0) return Status::FromErrno("--storage " + path + ": cannot create " + path + ".lock");
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::InvalidArgument("--storage " + path + " is in use by another running control service "
                                   "(one head per storage file)");
  }
  // The tables hold KV values and actor handles: only this user may read them (SQLite gives its
  // -wal and -shm files the database file's mode).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FromErrno("--storage " + path + ": cannot open the file");
  ::close(fd);
  int rc = sqlite3_open_v2(path.c_str(), &s->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) return s->Error("cannot open the file");
  const char* setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS quanta_rows (tbl TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
      "PRIMARY KEY (tbl, key)) WITHOUT ROWID;";
  if (sqlite3_exec(s->db_, setup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return s->Error("cannot set the file up (is it an SQLite database?)");
  }
  if (sqlite3_prepare_v2(s->db_, "INSERT OR REPLACE INTO quanta_rows (tbl, key, value) VALUES (?1, ?2, ?3)", -1,
                         &s->put_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(s->db_, "DELETE FROM quanta_rows WHERE tbl = ?1 AND key = ?2", -1, &s->delete_, nullptr) !=
          SQLITE_OK ||
      sqlite3_prepare_v2(s->db_, "SELECT key, value FROM quanta_rows WHERE tbl = ?1", -1, &s->load_, nullptr) !=
          SQLITE_OK) {
    return s->Error("cannot prepare its statements");
  }
  return s;
}

SqliteTableStore::~SqliteTableStore() {
  sqlite3_finalize(put_);
  sqlite3_finalize(delete_);
  sqlite3_finalize(load_);
  if (db_ != nullptr) sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status SqliteTableStore::Error(const std::string& what) const {
  return Status::IOError("--storage " + path_ + ": " + what + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory"));
}

Status SqliteTableStore::Run(sqlite3_stmt* stmt, std::string_view table, std::string_view key,
                             const std::string_view* value) {
  sqlite3_reset(stmt);
  sqlite3_bind_text(stmt, 1, table.data(), static_cast<int>(table.size()), SQLITE_TRANSIENT);
  sqlite3_bind_blob(stmt, 2, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  if (value != nullptr) sqlite3_bind_blob(stmt, 3, value->data(), static_cast<int>(value->size()), SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return Error(value != nullptr ? "write failed" : "delete failed");
  return Status::Ok();
}

Status SqliteTableStore::Put(std::string_view table, std::string_view key, std::string_view value) {
  return Run(put_, table, key, &value);
}

Status SqliteTableStore::Delete(std::string_view table, std::string_view key) {
  return Run(delete_, table, key, nullptr);
}

Result<TableStore::Rows> SqliteTableStore::Load(std::string_view table) {
  Rows rows;
  sqlite3_reset(load_);
  sqlite3_bind_text(load_, 1, table.data(), static_cast<int>(table.size()), SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(load_)) == SQLITE_ROW) {
    auto blob = [this](int col) {
      const char* p = static_cast<const char*>(sqlite3_column_blob(load_, col));
      return std::string(p == nullptr ? "" : p, p == nullptr ? 0 : sqlite3_column_bytes(load_, col));
    };
    rows.emplace_back(blob(0), blob(1));
  }
  sqlite3_reset(load_);
  if (rc != SQLITE_DONE) return Error("reading table " + std::string(table) + " failed");
  return rows;
}

}  // namespace quanta
