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
// Constant-time equality of two byte strings of the same length.
bool SecureEqual(std::string_view a, std::string_view b);
// `n` bytes from OpenSSL's CSPRNG.
std::string SecureRandom(size_t n);

}  // namespace quanta::net
