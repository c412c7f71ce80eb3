#include "control/redis_table_store.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

namespace quanta {

namespace {
constexpr timeval kTimeout{2, 0};
constexpr const char* kScanCount = "1000";
}  // namespace

Result<std::unique_ptr<RedisTableStore>> RedisTableStore::Open(const std::string& url) {
  std::unique_ptr<RedisTableStore> s(new RedisTableStore(url));
  std::string rest = url.substr(8);  // after "redis://"
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    s->prefix_ = rest.substr(slash + 1);
    rest.resize(slash);
    if (s->prefix_.empty()) s->prefix_ = "quanta";
  }
  auto colon = rest.rfind(':');
  s->host_ = rest.substr(0, colon);
  if (colon != std::string::npos) {
    char* end = nullptr;
    long port = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (end == rest.c_str() + colon + 1 || *end != '\0' || port <= 0 || port > 65535) {
      return Status::InvalidArgument("--storage " + url + ": the port must be a number from 1 to 65535");
    }
    s->port_ = static_cast<int>(port);
  }
  if (s->host_.empty() || s->host_.find('@') != std::string::npos) {
    return Status::InvalidArgument("--storage " + url + ": use redis://HOST:PORT[/PREFIX] (a password goes in "
                                   "QUANTA_REDIS_PASSWORD)");
  }
  if (const char* pw = std::getenv("QUANTA_REDIS_PASSWORD")) s->password_ = pw;
  QUANTA_RETURN_IF_ERROR(s->Connect());
  return s;
}

RedisTableStore::~RedisTableStore() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

Status RedisTableStore::Connect() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = redisConnectWithTimeout(host_.c_str(), port_, kTimeout);
  if (ctx_ == nullptr || ctx_->err) {
    std::string why = ctx_ ? ctx_->errstr : "out of memory";
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
    return Status::IOError("cannot reach the redis-server of --storage " + url_ + ": " + why);
  }
  redisSetTimeout(ctx_, kTimeout);
  if (!password_.empty()) {
    redisContext* c = ctx_;
    ctx_ = nullptr;  // Command() below must not reconnect
    auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %b", password_.data(), password_.size()));
    bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    std::string why = r == nullptr ? c->errstr : (r->type == REDIS_REPLY_ERROR ? r->str : "");
    if (r != nullptr) freeReplyObject(r);
    if (!ok) {
      redisFree(c);
      return Status::InvalidArgument("the redis-server of --storage " + url_ + " refused QUANTA_REDIS_PASSWORD: " + why);
    }
    ctx_ = c;
  }
  return Status::Ok();
}

Status RedisTableStore::Command(const std::vector<std::string_view>& argv, void** out) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (auto a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctx_ == nullptr || ctx_->err) QUANTA_RETURN_IF_ERROR(Connect());
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    if (r == nullptr) continue;  // the connection broke: reopen it once
    if (r->type == REDIS_REPLY_ERROR) {
      std::string why(r->str, r->len);
      freeReplyObject(r);
      return Status::IOError("the redis-server of --storage " + url_ + " answered: " + why);
    }
    if (out != nullptr) {
      *out = r;
    } else {
      freeReplyObject(r);
    }
    return Status::Ok();
  }
  return Status::IOError("lost the redis-server of --storage " + url_ + ": " + (ctx_ ? ctx_->errstr : "?"));
}

Status RedisTableStore::Put(std::string_view table, std::string_view key, std::string_view value) {
  std::string hash = prefix_ + ":" + std::string(table);
  return Command({"HSET", hash, key, value}, nullptr);
}

Status RedisTableStore::Delete(std::string_view table, std::string_view key) {
  std::string hash = prefix_ + ":" + std::string(table);
  return Command({"HDEL", hash, key}, nullptr);
}

Result<TableStore::Rows> RedisTableStore::Load(std::string_view table) {
  std::string hash = prefix_ + ":" + std::string(table);
  Rows rows;
  std::string cursor = "0";
  do {  // HSCAN in pages, so no one reply holds a whole large table
    void* raw = nullptr;
    QUANTA_RETURN_IF_ERROR(Command({"HSCAN", hash, cursor, "COUNT", kScanCount}, &raw));
    auto* r = static_cast<redisReply*>(raw);
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements % 2 == 0;
    if (ok) {
      cursor.assign(r->element[0]->str, r->element[0]->len);
      redisReply* items = r->element[1];
      for (size_t i = 0; i + 1 < items->elements; i += 2) {
        rows.emplace_back(std::string(items->element[i]->str, items->element[i]->len),
                          std::string(items->element[i + 1]->str, items->element[i + 1]->len));
      }
    }
    freeReplyObject(r);
    if (!ok) return Status::ProtocolError("the redis-server of --storage " + url_ + " gave an unexpected HSCAN reply");
  } while (cursor != "0");
  return rows;
}

}  // namespace quanta
