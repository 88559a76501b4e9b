// AccessDirectory: each tenant's principals and their API keys, kept in the
// keystore (store.h) and in memory, and the check of an API key's secret.
//
// An API key's secret is text that secret scanners can find:
//
//   kmsd_ak_<id: 16 hex digits>_<43 base64url characters: 32 random bytes>
//
// The keystore holds only HMAC-SHA256(secret) under a token key
// (hierarchy.h's kApiKeyHmacKeyLabel, non-extractable): a copy of the keystore gives
// nobody a usable key. Authenticate() looks the key up by the id in the
// secret; the first time a key is presented it is checked with the token's
// HMAC (a token round trip, on the receiving thread: the identify stage) and,
// once it matches, the SHA-256 of the secret is kept in memory, so later
// requests cost a SHA-256 and a constant-time comparison, not a token call.
// A revoked or expired key is refused at once, without a token call.
// Its last use is kept in memory and written to the keystore by FlushUsage().
//
// Roles are stored as given: which names are roles is the policy's rule
// (policy/roles.h), checked by the caller. Every change is durable (one
// keystore transaction) before memory changes; a failed write changes
// nothing. Thread-safe; holds references to the store, token and clock,
// which must outlive it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "keystore/store.h"
#include "pkcs11/token.h"
#include "protocol/clock.h"
#include "protocol/secret_buffer.h"

namespace kmsd {

inline constexpr std::string_view kApiKeySecretPrefix = "kmsd_ak_";
// Time bounds of an API key's expiry, counted from its creation.
inline constexpr int64_t kMinApiKeyLifetimeSeconds = 1;
inline constexpr int64_t kMaxApiKeyLifetimeSeconds = 3650 * 86400;

enum class ApiKeyState { kActive, kRevoked, kExpired };
// "active", "revoked", "expired".
std::string_view ApiKeyStateName(ApiKeyState state);
ApiKeyState StateOf(const ApiKeyRecord& key, int64_t now);

// A new API key: its record and the secret, shown once.
struct NewApiKey {
  ApiKeyRecord record;
  SecretBuffer secret;
};

// The principal an API key belongs to, as Authenticate() found it.
struct AuthenticatedKey {
  std::string key_id;
  std::shared_ptr<const PrincipalRecord> principal;
};

class AccessDirectory {
 public:
  AccessDirectory(KeyStore& store, pkcs11::Token& token, pkcs11::ObjectHandle hmac_key,
                  const Clock& clock);
  ~AccessDirectory();

  int64_t Now() const { return clock_.NowSeconds(); }

  // Start-up only, before any other call.
  void Load(std::vector<PrincipalRecord> principals, std::vector<ApiKeyRecord> api_keys);

  // `record.created_at` is set here. ALREADY_EXISTS, or NOT_FOUND for a
  // tenant the keystore does not have.
  Result<PrincipalRecord> CreatePrincipal(PrincipalRecord record);
  Result<PrincipalRecord> DescribePrincipal(std::string_view tenant, std::string_view name) const;
  std::vector<PrincipalRecord> ListPrincipals(std::string_view tenant) const;
  // Also deletes the principal's API keys.
  Status DeletePrincipal(std::string_view tenant, std::string_view name);
  Result<PrincipalRecord> SetPrincipalRoles(std::string_view tenant, std::string_view name,
                                            std::vector<std::string> roles);

  // `lifetime_seconds` within [kMinApiKeyLifetimeSeconds,
  // kMaxApiKeyLifetimeSeconds] (INVALID_ARGUMENT); nullopt: never expires.
  Result<NewApiKey> CreateApiKey(std::string_view tenant, std::string_view principal,
                                 std::optional<int64_t> lifetime_seconds);
  // NOT_FOUND when `principal` is named and does not exist.
  Result<std::vector<ApiKeyRecord>> ListApiKeys(std::string_view tenant,
                                                std::optional<std::string_view> principal) const;
  // Revoking a revoked key is a no-op; NOT_FOUND for a key of another tenant.
  Result<ApiKeyRecord> RevokeApiKey(std::string_view tenant, std::string_view id);

  // ACCESS_DENIED "the API key is not valid" for a malformed, unknown or
  // wrong secret (the same words for each), or naming the key when it is
  // revoked or expired and its secret was proven before (a revoked or expired
  // key never proven costs no token call: it is just not valid). A token
  // that does not answer the first check also makes the key not valid.
  Result<AuthenticatedKey> Authenticate(std::string_view secret);

  // True when some principal is bound to `uid` or to one of `gids`.
  bool IsBoundPeer(uint64_t uid, std::span<const uint64_t> gids) const;

  // Writes the last-use times changed since the last flush; errors are
  // returned and the times kept for the next flush.
  Status FlushUsage();
  // Forgets a shredded tenant's principals and keys (the keystore already did).
  void ForgetTenant(std::string_view tenant);

 private:
  struct KeyEntry;
  using PrincipalKey = std::pair<std::string, std::string>;  // tenant, name
  using Digest = std::array<uint8_t, 32>;

  Result<std::shared_ptr<KeyEntry>> FindKeyEntry(std::string_view id) const;
  // The secret's HMAC under the token key.
  Result<Bytes> HmacOf(std::string_view secret) const;
  // True when the token's HMAC of `secret` is `stored` (constant time).
  bool VerifyWithToken(std::string_view secret, const Bytes& stored) const;
  Status CheckUsable(const KeyEntry& entry, int64_t now) const;
  void RebuildBoundPeers();  // mu_ held for writing

  KeyStore& store_;
  pkcs11::Token& token_;
  const pkcs11::ObjectHandle hmac_key_;
  const Clock& clock_;

  std::mutex write_mu_;  // serializes changes: keystore write, then memory
  mutable std::shared_mutex mu_;
  std::map<PrincipalKey, std::shared_ptr<const PrincipalRecord>, std::less<>>
      principals_;                                                      // guarded by mu_
  std::map<std::string, std::shared_ptr<KeyEntry>, std::less<>> keys_;  // guarded by mu_
  std::set<uint64_t> bound_uids_;                                       // guarded by mu_
  std::set<uint64_t> bound_gids_;                                       // guarded by mu_
};

}  // namespace kmsd
