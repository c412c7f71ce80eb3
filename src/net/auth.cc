#include "net/auth.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace quanta::net {

namespace {

constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenBytes = 4096;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '\t')) ++start;
  return s.substr(start);
}

Result<std::string> ReadTokenFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno("open token file " + path);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("the token file " + path + " is not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    ::close(fd);
    return Status::InvalidArgument("the token file " + path + " belongs to uid " + std::to_string(st.st_uid) +
                                   ", not to you (uid " + std::to_string(::geteuid()) + "); refusing to use it");
  }
  if (st.st_mode & 077) {
    ::close(fd);
    char mode[8];
    snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::InvalidArgument("the token file " + path + " is accessible to other users (mode " + mode +
                                   "); run `chmod 600 " + path + "`");
  }
  std::string data(kMaxTokenBytes + 1, '\0');
  ssize_t n = ::read(fd, data.data(), data.size());
  ::close(fd);
  if (n < 0) return Status::FromErrno("read token file " + path);
  data.resize(static_cast<size_t>(n));
  return Trim(data);
}

}  // namespace

std::string ClusterToken::Sources() {
  return "the QUANTA_AUTH_TOKEN environment variable, the file named by QUANTA_AUTH_TOKEN_PATH, or "
         "~/.quanta/auth_token (`quanta get-auth-token` on the head prints its token)";
}

Result<ClusterToken> ClusterToken::Load() {
  ClusterToken t;
  if (const char* v = std::getenv("QUANTA_AUTH_TOKEN"); v != nullptr && *v) {
    t.secret = Trim(v);
    t.source = "QUANTA_AUTH_TOKEN";
  } else if (const char* p = std::getenv("QUANTA_AUTH_TOKEN_PATH"); p != nullptr && *p) {
    auto data = ReadTokenFile(p);
    if (!data.ok()) return data.status();
    t.secret = std::move(data).value();
    t.source = p;
  } else {
    const char* home = std::getenv("HOME");
    std::string path = std::string(home ? home : "") + "/.quanta/auth_token";
    auto data = ReadTokenFile(path);
    if (!data.ok()) {
      return Status::NotFound("no cluster token: set " + Sources() + " (" + data.status().message() + ")");
    }
    t.secret = std::move(data).value();
    t.source = path;
  }
  if (t.secret.size() < kMinTokenBytes || t.secret.size() > kMaxTokenBytes) {
    return Status::InvalidArgument("the cluster token from " + t.source + " must be " +
                                   std::to_string(kMinTokenBytes) + " to " + std::to_string(kMaxTokenBytes) +
                                   " characters long (got " + std::to_string(t.secret.size()) + ")");
  }
  return t;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

HmacKey::HmacKey(std::string_view key) : key_(key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return;
  ctx_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (ctx_ == nullptr) return;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key_.data()), key_.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx_);
    ctx_ = nullptr;
  }
}

HmacKey::~HmacKey() { EVP_MAC_CTX_free(ctx_); }

std::string HmacKey::Sign(std::string_view data) const {
  EVP_MAC_CTX* c = ctx_ == nullptr ? nullptr : EVP_MAC_CTX_dup(ctx_);
  if (c == nullptr) return HmacSha256(key_, data);
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  bool ok = EVP_MAC_update(c, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
            EVP_MAC_final(c, out, &len, sizeof out) == 1;
  EVP_MAC_CTX_free(c);
  if (!ok) return HmacSha256(key_, data);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool SecureEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string SecureRandom(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) std::abort();
  return out;
}

}  // namespace quanta::net
