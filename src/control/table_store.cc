#include "control/table_store.h"

#include "common/logging.h"
#include "control/redis_table_store.h"
#include "control/sqlite_table_store.h"

namespace quanta {

void TableStore::Write(std::string_view table, std::string_view key, std::string_view value) {
  Status st = Put(table, key, value);
  if (!st.ok()) Failed(st);
}

void TableStore::Erase(std::string_view table, std::string_view key) {
  Status st = Delete(table, key);
  if (!st.ok()) Failed(st);
}

void TableStore::Failed(const Status& st) {
  ++failed_writes_;
  auto now = std::chrono::steady_clock::now();
  if (failed_writes_ == 1 || now - last_logged_ >= std::chrono::seconds(10)) {
    last_logged_ = now;
    QLOG(kError) << "could not persist a change to " << Describe() << ": " << st.message() << " ("
                 << failed_writes_ << " failed writes so far; the change holds in memory but a restarted "
                 << "head would not see it)";
  }
}

Result<std::unique_ptr<TableStore>> OpenTableStore(const std::string& spec) {
  if (spec.empty()) return Status::InvalidArgument("an empty --storage value");
  if (spec.rfind("redis://", 0) == 0) {
    auto r = RedisTableStore::Open(spec);
    if (!r.ok()) return r.status();
    return std::unique_ptr<TableStore>(std::move(r).value());
  }
  if (spec.find("://") != std::string::npos) {
    return Status::InvalidArgument("--storage " + spec + ": use redis://HOST:PORT or a file path (SQLite)");
  }
  auto s = SqliteTableStore::Open(spec);
  if (!s.ok()) return s.status();
  return std::unique_ptr<TableStore>(std::move(s).value());
}

std::string U32Key(uint32_t v) {
  std::string k(4, '\0');
  for (int i = 0; i < 4; ++i) k[i] = static_cast<char>(v >> (24 - 8 * i));
  return k;
}

std::string U64Key(uint64_t v) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(v >> (56 - 8 * i));
  return k;
}

uint64_t KeyU64(std::string_view key) {
  uint64_t v = 0;
  for (unsigned char c : key) v = (v << 8) | c;
  return v;
}

}  // namespace quanta
