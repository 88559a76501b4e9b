// AccessDirectory: each tenant's principals and their API keys, custom roles
// and grants, kept in the keystore (store.h) and in memory, and the check of
// an API key's secret.
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
// Roles, permission statements, grant operations and tenant policy
// documents are stored as given:
// what they mean is the policy's rule (policy/roles.h, policy/grants.h),
// checked by the caller; a role change is checked against the tenant's roles
// of the moment by a validator the caller passes. generation() changes with
// every change of principals, roles or grants, so a caller may cache what it
// derives from them. Every change is durable (one
// keystore transaction) before memory changes; a failed write changes
// nothing. Thread-safe; holds references to the store, token and clock,
// which must outlive it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
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

// The principal an API key belongs to, as Authenticate() found it, and the
// directory's generation when it did.
struct AuthenticatedKey {
  std::string key_id;
  std::shared_ptr<const PrincipalRecord> principal;
  uint64_t generation = 0;
};

// Checks a new or changed role against the tenant's roles (which hold it
// already when it is a change).
using RoleValidator = std::function<Status(const RoleRecord& role, const RoleCatalog& roles)>;

// What decides a principal's access: the tenant's custom roles and the
// principal's grants (retired ones left out), at a generation.
struct PrincipalAccessRecords {
  std::shared_ptr<const RoleCatalog> roles;
  std::vector<GrantRecord> grants;
  uint64_t generation = 0;
};

// Which grants grant.list shows.
struct GrantFilter {
  std::optional<KeyId> key_id;
  std::optional<std::string> principal;
};

class AccessDirectory {
 public:
  AccessDirectory(KeyStore& store, pkcs11::Token& token, pkcs11::ObjectHandle hmac_key,
                  const Clock& clock);
  ~AccessDirectory();

  int64_t Now() const { return clock_.NowSeconds(); }
  const Clock& clock() const { return clock_; }

  // Start-up only, before any other call.
  void Load(KeyStoreSnapshot& snapshot);

  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

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
  // that does not answer the first check gives its error (TOKEN_UNAVAILABLE),
  // not a verdict: `guessed` stays unset.
  // `guessed`, when given, is set when the secret is one nobody holds
  // (malformed, unknown id, wrong secret): a failed attempt, where a
  // revoked or expired key is not.
  Result<AuthenticatedKey> Authenticate(std::string_view secret, bool* guessed = nullptr);
  // True while the key exists and is neither revoked nor expired.
  bool KeyUsable(std::string_view key_id) const;

  // For a session opened with the key `key_id` (whose secret was proven
  // then): its principal, while the key is usable. ACCESS_DENIED naming the
  // key when it is revoked or expired (sessions end with their key), "not
  // valid" when it or its principal is gone. No token call.
  Result<AuthenticatedKey> AuthenticateProven(std::string_view key_id);
  // "TENANT/PRINCIPAL" of the key a secret names by its id, proven or not
  // (to count failed attempts against the principal); nullopt for none.
  std::optional<std::string> OwnerOfKey(std::string_view secret) const;

  // A principal's TOTP seed, wrapped by the caller (mfa.enroll); replaces
  // the one before. NOT_FOUND for a principal that does not exist.
  Status SetMfaSeed(std::string_view tenant, std::string_view principal, Bytes wrapped);
  std::optional<MfaSeedRecord> MfaSeedOf(std::string_view tenant, std::string_view principal) const;

  // True when some principal is bound to `uid` or to one of `gids`.
  bool IsBoundPeer(uint64_t uid, std::span<const uint64_t> gids) const;

  // Custom roles. ALREADY_EXISTS / NOT_FOUND as store.h; `validate` runs
  // under the directory's write lock with the tenant's roles (for an update,
  // holding the old definition). Timestamps are set here.
  Result<RoleRecord> CreateRole(RoleRecord role, const RoleValidator& validate);
  Result<RoleRecord> UpdateRole(RoleRecord role, const RoleValidator& validate);
  Result<RoleRecord> DescribeRole(std::string_view tenant, std::string_view name) const;
  std::vector<RoleRecord> ListRoles(std::string_view tenant) const;
  // INVALID_ARGUMENT while a principal holds the role or a role inherits it.
  Status DeleteRole(std::string_view tenant, std::string_view name);
  std::shared_ptr<const RoleCatalog> RolesOf(std::string_view tenant) const;

  // Grants. `grant.id` and `created_at` are set here; NOT_FOUND for a
  // principal or key the tenant does not have.
  Result<GrantRecord> CreateGrant(GrantRecord grant);
  std::vector<GrantRecord> ListGrants(std::string_view tenant, const GrantFilter& filter) const;
  Result<GrantRecord> DescribeGrant(std::string_view tenant, std::string_view id) const;
  // Retiring a retired grant is a no-op; NOT_FOUND for another tenant's.
  Result<GrantRecord> RetireGrant(std::string_view tenant, std::string_view id);
  // The roles and grants that decide `principal`'s access.
  PrincipalAccessRecords AccessRecordsOf(std::string_view tenant, std::string_view principal) const;

  // Tenant policies, as put (policy/tenant_policy.h reads them; the caller
  // checks a document before putting it). A put replaces the tenant's
  // document; NOT_FOUND for a tenant the keystore does not have.
  Result<std::shared_ptr<const TenantPolicyRecord>> PutTenantPolicy(std::string_view tenant,
                                                                    std::string document);
  // nullptr when the tenant has none. A record is never changed once
  // returned: a new put makes a new one, so a caller may cache what it
  // derives from a record by its address while it holds the pointer.
  std::shared_ptr<const TenantPolicyRecord> PolicyOf(std::string_view tenant) const;
  std::vector<std::shared_ptr<const TenantPolicyRecord>> AllPolicies() const;
  // True when some tenant has a policy (cheap: no lock).
  bool AnyPolicy() const { return policy_count_.load(std::memory_order_acquire) > 0; }

  // Writes the last-use times changed since the last flush; errors are
  // returned and the times kept for the next flush.
  Status FlushUsage();
  // Forgets a shredded tenant's principals, keys, roles, grants and policy
  // (the keystore already did).
  void ForgetTenant(std::string_view tenant);
  // Forgets a shredded key's grants (the keystore already did).
  void ForgetKeyGrants(const KeyId& key_id);

 private:
  struct KeyEntry;
  using PrincipalKey = std::pair<std::string, std::string>;  // tenant, name
  using Digest = std::array<uint8_t, 32>;

  Result<std::shared_ptr<KeyEntry>> FindKeyEntry(std::string_view id) const;
  // The secret's HMAC under the token key.
  Result<Bytes> HmacOf(std::string_view secret) const;
  // True when the token's HMAC of `secret` is `stored` (constant time); the
  // token's error when it cannot say.
  Result<bool> VerifyWithToken(std::string_view secret, const Bytes& stored) const;
  Status CheckUsable(const KeyEntry& entry, int64_t now) const;
  void RebuildBoundPeers();  // mu_ held for writing
  void Changed() { generation_.fetch_add(1, std::memory_order_acq_rel); }
  // NOT_FOUND unless the principal exists; mu_ held.
  Status CheckPrincipalHere(std::string_view tenant, std::string_view name) const;
  // 16 random lowercase hex digits (API key and grant ids).
  Result<std::string> RandomId() const;
  Result<RoleRecord> WriteRole(RoleRecord role, const RoleValidator& validate, bool create);

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
  // Copy on write: a reader keeps the catalog it was given.
  std::map<std::string, std::shared_ptr<const RoleCatalog>, std::less<>> roles_;  // by tenant
  std::map<std::string, GrantRecord, std::less<>> grants_;                        // by id
  std::map<std::string, std::shared_ptr<const TenantPolicyRecord>, std::less<>>
      policies_;  // by tenant; guarded by mu_
  std::atomic<size_t> policy_count_{0};
  std::map<PrincipalKey, MfaSeedRecord, std::less<>> mfa_seeds_;  // guarded by mu_
  std::atomic<uint64_t> generation_{1};
};

}  // namespace kmsd
