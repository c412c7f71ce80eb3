// A TableStore in a redis-server (Debian's libhiredis): `--storage redis://HOST:PORT[/PREFIX]`.
//
// Each table is one Redis hash, "<PREFIX>:<table>" (PREFIX defaults to "quanta"; give each
// cluster sharing a server its own). Every Put/Delete is one synchronous command answered by the
// server before it returns, with a 2 s timeout; a lost connection is reopened on the next call.
// How durable the data is, is the server's setting: run it with `appendonly yes` (and
// `appendfsync everysec` or `always`) so that a restarted redis-server still has the tables.
// The server's password, if any, comes from QUANTA_REDIS_PASSWORD.
//
// Ownership: owns its connection. Thread-safety: one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/table_store.h"

struct redisContext;

namespace quanta {

class RedisTableStore : public TableStore {
 public:
  static Result<std::unique_ptr<RedisTableStore>> Open(const std::string& url);
  ~RedisTableStore() override;

  Status Put(std::string_view table, std::string_view key, std::string_view value) override;
  Status Delete(std::string_view table, std::string_view key) override;
  Result<Rows> Load(std::string_view table) override;
  std::string Describe() const override { return url_; }

 private:
  explicit RedisTableStore(std::string url) : url_(std::move(url)) {}
  Status Connect();
  // Runs one command; on success `reply` (if given) gets the reply, freed by the caller.
  Status Command(const std::vector<std::string_view>& argv, void** reply);

  std::string url_, host_, prefix_ = "quanta", password_;
  int port_ = 6379;
  redisContext* ctx_ = nullptr;
};

}  // namespace quanta
