// The cluster token and the cryptographic primitives of the handshake (OpenSSL's libcrypto).
//
// Every process of a cluster that speaks TCP holds the same random token. It never crosses the
// wire: peers prove they hold it with HMAC-SHA256 over fresh nonces (net/handshake.h).
//
// Token sources, first found wins (as documented in docs/security.md):
//   QUANTA_AUTH_TOKEN            the token itself
//   QUANTA_AUTH_TOKEN_PATH       a file holding it
//   ~/.quanta/auth_token         written by `quanta start --head` (mode 0600)
// A token file readable or writable by other users is refused (it would not be a secret).
//
// Thread-safety: values and pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX (openssl/types.h)

namespace quanta::net {

struct ClusterToken {
  std::string secret;    // at least 16 bytes
  std::string source;    // where it came from, for error messages
  static Result<ClusterToken> Load();
  // What to tell a user whose token was missing or refused.
  static std::string Sources();
};

// HMAC-SHA256(key, data): 32 bytes.
std::string HmacSha256(std::string_view key, std::string_view data);

// HMAC-SHA256 under one key many times: the keyed state is prepared once (OpenSSL's EVP_MAC)
// and copied per message, which costs a fraction of a one-shot HMAC. Thread-safety: Sign may be
// called from one thread at a time.
class HmacKey {
 public:
  explicit HmacKey(std::string_view key);
  ~HmacKey();
  HmacKey(const HmacKey&) = delete;
  HmacKey& operator=(const HmacKey&) = delete;
  std::string Sign(std::string_view data) const;  // == HmacSha256(key, data)

 private:
  ::evp_mac_ctx_st* ctx_ = nullptr;  // OpenSSL's EVP_MAC_CTX
  std::string key_;  // kept for the one-shot fallback should OpenSSL refuse the prepared state
};
// Constant-time equality of two byte strings of the same length.
bool SecureEqual(std::string_view a, std::string_view b);
// `n` bytes from OpenSSL's CSPRNG.
std::string SecureRandom(size_t n);

}  // namespace quanta::net
