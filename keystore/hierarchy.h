// KeyHierarchy: tenants, keys, versions and aliases, rooted in a token.
//
//   token:    global/platform-master-key   AES-256, non-extractable
//             global/audit-log-key         HMAC-SHA256, non-extractable
//             global/api-key-hmac-key      HMAC-SHA256, non-extractable (API keys)
//             tenants/<tenant>/keys/<id>   AES-256 wrap/unwrap only: one KEK per key
//   keystore: key versions, each an AES-256 key wrapped under its key's KEK
//
// Crypto-shredding (DESIGN.md invariant 2) happens in the token: when a key's
// pending window ends its KEK is destroyed, and when a tenant's ends every KEK
// of the tenant is. Whatever copy of the keystore is put back afterwards, the
// shredded versions cannot be unwrapped, while every other key keeps its own
// KEK and is untouched. The keystore forgets the key and queues the KEK's label
// in one transaction; the KEK is destroyed next and dequeued, and a queue left
// by a crash is worked off at the next start, before anything is served.
// Keys made before keystore schema 3 (wrapped under a per-tenant root) and
// KEKs made before hardening are moved to new hardened KEKs at start-up
// (kek_migration.cc), before anything is served.
//
// Versions are unwrapped on first use into session objects whose handles are
// cached: the request path does no C_FindObjects and no keystore read. A
// session object is reference-counted: forgetting a version drops the
// catalog's reference, and the object is destroyed when the last request
// using it is done.
//
// Lifecycle (docs/PROTOCOL.md). A key is enabled, disabled or pending
// deletion; a tenant is active or pending deletion. A disabled key fails every
// use with KEY_DISABLED; a key pending deletion, and every key of a tenant
// pending deletion, with KEY_PENDING_DELETION. Cancelling a key's deletion
// leaves it disabled (as AWS KMS does). RunDueWork(), called at start-up and
// then periodically, shreds what is due and rotates keys whose rotation period
// has passed since their newest version (once, however long the daemon was
// down). Versions below a key's minimum decryption version fail to decrypt
// with KEY_DISABLED.
//
// Nonce limits (invariant 6). Each version counts its encryptions against
// max_encryptions_per_version and reserves them in the keystore in blocks
// before use; after a restart the count resumes from the reservation, so it
// can over-count but never under-count. The encryption that would pass the
// limit rotates the key first and goes to the new version.
//
// Thread-safe. Reads (encrypt, decrypt, describe) take a shared lock only for
// catalog lookups; changes are serialized, written durably to the KeyStore
// first, then applied to the in-memory catalog. No keystore write happens
// under the catalog's lock. Holds references to the Token and Clock, which
// must outlive it. One daemon per keystore database: the catalog is loaded
// once (the nonce budget alone is safe to share, see store.h).
//
// The parts, each in a file of its own (keystore/ARCHITECTURE-keystore.md):
// hierarchy.cc (opening, loading), tenants.cc, keys.cc, aliases.cc,
// crypto.cc (invariant 3), shredder.cc and due_work.cc (invariant 2, rotation),
// kek_migration.cc; keystore/internal/ has the catalog, the nonce budget
// (invariant 6), the destroy queue and the AEAD.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "keystore/store.h"
#include "pkcs11/token.h"
#include "protocol/ciphertext.h"
#include "protocol/clock.h"
#include "protocol/lifecycle_limits.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd {

inline constexpr std::string_view kPlatformMasterKeyLabel = "global/platform-master-key";
inline constexpr std::string_view kAuditLogKeyLabel = "global/audit-log-key";
inline constexpr std::string_view kApiKeyHmacKeyLabel = "global/api-key-hmac-key";

// The keys and aliases every tenant starts with.
struct DefaultKey {
  std::string_view name;
  std::string_view alias;
};
inline constexpr DefaultKey kDefaultTenantKeys[] = {
    {"data-encryption-key", "alias/data"},
    {"secrets-key", "alias/secrets"},
    {"api-keys-key", "alias/api-keys"},
};

// Pending windows (protocol/lifecycle_limits.h). The minimum can be lowered
// (LifecycleOptions), the maximum cannot.
inline constexpr int64_t kDefaultMinPendingWindowSeconds = kMinPendingWindowDays * kSecondsPerDay;
inline constexpr int64_t kMaxPendingWindowSeconds = kMaxPendingWindowDays * kSecondsPerDay;

// Rotation periods: 1 day (lowerable to 1 s) to 10 years.
inline constexpr int64_t kDefaultMinRotationPeriodSeconds = 86400;
inline constexpr int64_t kMaxRotationPeriodSeconds = 3650 * 86400;
// NIST SP 800-38D: at most 2^32 invocations with random 96-bit IVs.
inline constexpr uint64_t kMaxEncryptionsPerVersion = kAllEncryptionsReserved;

struct LifecycleOptions {
  int64_t min_pending_window_seconds = kDefaultMinPendingWindowSeconds;    // 1 .. 7 days
  int64_t min_rotation_period_seconds = kDefaultMinRotationPeriodSeconds;  // 1 .. 1 day
  // 1 .. 2^32: a version's encryption number N is allowed while N <= this.
  uint64_t max_encryptions_per_version = kMaxEncryptionsPerVersion;
};

enum class KeyState { kEnabled, kDisabled, kPendingDeletion };
// "enabled", "disabled", "pending_deletion".
std::string_view KeyStateName(KeyState state);

struct TenantInfo {
  std::string name;
  int64_t created_at = 0;
  size_t key_count = 0;
  size_t alias_count = 0;
  std::optional<int64_t> deletion_date;  // set while pending deletion
};

struct KeyInfo {
  KeyId id{};
  std::string tenant;
  std::string name;
  std::string description;
  int64_t created_at = 0;
  bool enabled = true;
  KeyState state = KeyState::kEnabled;
  std::optional<int64_t> deletion_date;  // set while pending deletion
  uint32_t latest_version = 0;
  uint32_t min_decryption_version = 1;
  std::optional<int64_t> rotation_period_seconds;
  std::optional<int64_t> next_rotation_at;  // set while automatic rotation is on
  std::vector<std::string> aliases;
};

struct VersionInfo {
  uint32_t version = 0;
  int64_t created_at = 0;
  // Encryptions counted so far; after a restart, those reserved (an upper bound).
  uint64_t encryptions = 0;
};

// What one RunDueWork() call did.
struct DueWorkReport {
  size_t keys_shredded = 0;
  size_t tenants_shredded = 0;
  size_t keys_rotated = 0;
  size_t token_objects_destroyed = 0;
  // What was due and failed (retried at the next run): "tenant/key: why"
  // for rotations, "tenant[/key]: why" for shredding.
  std::vector<std::string> rotations_failed;
  std::vector<std::string> shredding_failed;
};

struct AliasInfo {
  std::string alias;
  std::string key_name;
  KeyId key_id{};
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct EncryptOutput {
  Bytes ciphertext;
  KeyId key_id{};
  std::string key_name;
  uint32_t version = 0;
};

struct DecryptOutput {
  SecretBuffer plaintext;
  KeyId key_id{};
  std::string key_name;
  uint32_t version = 0;
};

class AccessDirectory;   // keystore/access_directory.h
class UnwrappedVersion;  // keystore/internal/catalog.h
namespace keystore_internal {
struct Version;
struct Key;
struct Tenant;
class Catalog;
class DestroyQueue;
}  // namespace keystore_internal

class KeyHierarchy {
 public:
  // Finds or creates the global keys, loads the keystore and finds each
  // tenant's root in the token (one scan, at start-up).
  static Result<std::unique_ptr<KeyHierarchy>> Open(pkcs11::Token& token,
                                                    std::unique_ptr<KeyStore> store,
                                                    const Clock& clock,
                                                    LifecycleOptions lifecycle = {});
  ~KeyHierarchy();

  const LifecycleOptions& lifecycle() const { return lifecycle_; }

  Result<TenantInfo> CreateTenant(std::string_view tenant);
  // Describes a tenant in any state.
  Result<TenantInfo> DescribeTenant(std::string_view tenant) const;
  std::vector<TenantInfo> ListTenants() const;
  // KEY_PENDING_DELETION if the tenant exists and is pending deletion, else
  // OK (an unknown tenant is left to the operation). Every tenant operation
  // below except DescribeTenant and CancelTenantDeletion fails like this too.
  Status CheckNotPendingDeletion(std::string_view tenant) const;
  // `window_seconds` must be within [min_pending_window_seconds,
  // kMaxPendingWindowSeconds] (INVALID_ARGUMENT). Scheduling a tenant already
  // pending is KEY_PENDING_DELETION; cancelling one that is not, INVALID_ARGUMENT.
  Result<TenantInfo> ScheduleTenantDeletion(std::string_view tenant, int64_t window_seconds);
  Result<TenantInfo> CancelTenantDeletion(std::string_view tenant);

  // QUOTA_EXCEEDED when the tenant already holds `max_keys` keys (checked
  // under the lock that serializes creations).
  Result<KeyInfo> CreateKey(std::string_view tenant, std::string_view name,
                            std::string_view description,
                            std::optional<uint64_t> max_keys = std::nullopt);
  Result<KeyInfo> DescribeKey(std::string_view tenant, std::string_view key_ref) const;
  // NOT_FOUND unless the tenant has a key with that id.
  Result<KeyInfo> DescribeKeyById(std::string_view tenant, const KeyId& id) const;
  Result<std::vector<KeyInfo>> ListKeys(std::string_view tenant) const;
  Result<KeyInfo> RotateKey(std::string_view tenant, std::string_view key_ref);
  Result<std::vector<VersionInfo>> ListVersions(std::string_view tenant,
                                                std::string_view key_ref) const;
  // KEY_PENDING_DELETION for a key pending deletion; enabling an enabled key
  // (or disabling a disabled one) is a no-op.
  Result<KeyInfo> SetKeyEnabled(std::string_view tenant, std::string_view key_ref, bool enabled);
  // As for tenants: window bounds INVALID_ARGUMENT, twice KEY_PENDING_DELETION.
  Result<KeyInfo> ScheduleKeyDeletion(std::string_view tenant, std::string_view key_ref,
                                      int64_t window_seconds);
  // Leaves the key disabled; INVALID_ARGUMENT if it is not pending deletion.
  Result<KeyInfo> CancelKeyDeletion(std::string_view tenant, std::string_view key_ref);
  // nullopt turns automatic rotation off; a period must be within
  // [min_rotation_period_seconds, kMaxRotationPeriodSeconds] (INVALID_ARGUMENT).
  Result<KeyInfo> SetRotationPeriod(std::string_view tenant, std::string_view key_ref,
                                    std::optional<int64_t> period_seconds);
  // The tenant policy's key_rotation_days, in seconds (nullopt: none): every
  // key of the tenant, with or without a period of its own, gets a new
  // version at least that often (RunDueWork; next_rotation_at shows it).
  // Kept in memory: the daemon sets it from the stored policy at start.
  // NOT_FOUND for a tenant that does not exist.
  Status SetRotationCeiling(std::string_view tenant, std::optional<int64_t> seconds);
  // 1 .. latest version (INVALID_ARGUMENT); may be raised and lowered again.
  Result<KeyInfo> SetMinDecryptionVersion(std::string_view tenant, std::string_view key_ref,
                                          uint32_t version);

  // Shreds keys and tenants whose window has ended, rotates keys that are due
  // and destroys token objects still queued (also those a failed earlier call
  // left). Errors are logged and retried on the next call; the report counts
  // what was done.
  DueWorkReport RunDueWork();

  Result<AliasInfo> CreateAlias(std::string_view tenant, std::string_view alias,
                                std::string_view key_name);
  Result<AliasInfo> UpdateAlias(std::string_view tenant, std::string_view alias,
                                std::string_view key_name);
  Status DeleteAlias(std::string_view tenant, std::string_view alias);
  Result<std::vector<AliasInfo>> ListAliases(std::string_view tenant) const;

  // Encrypts under the newest version of `key_ref`; counts the encryption
  // against the version's limit, rotating first when it is reached.
  Result<EncryptOutput> Encrypt(std::string_view tenant, std::string_view key_ref,
                                std::span<const uint8_t> plaintext,
                                const EncryptionContext& context);
  // The key and version come from the ciphertext. When `expected_key_ref` is
  // given, a ciphertext of another key is INVALID_CIPHERTEXT.
  Result<DecryptOutput> Decrypt(std::string_view tenant, std::span<const uint8_t> ciphertext,
                                const EncryptionContext& context,
                                std::optional<std::string_view> expected_key_ref);

  size_t TenantCount() const;
  size_t KeyCount() const;
  // Each tenant's principals and API keys; a shredded tenant's go with it.
  AccessDirectory& access() { return *access_; }
  const AccessDirectory& access() const { return *access_; }
  const KeyStore& store() const { return *store_; }
  // KeyStore::Backup of the store; changes wait while the copy is taken.
  Result<KeyStoreCopyInfo> BackupStore(const std::string& path) { return store_->Backup(path); }

 private:
  // The parts (keystore/internal/, keystore/ARCHITECTURE-keystore.md).
  using Version = keystore_internal::Version;
  using Key = keystore_internal::Key;
  using Tenant = keystore_internal::Tenant;
  using VersionHandle = std::shared_ptr<const UnwrappedVersion>;
  using LabelMap = std::map<std::string, pkcs11::ObjectHandle, std::less<>>;
  // What an encryption needs, copied out of the catalog under its lock.
  struct UsableVersion {
    KeyId key_id{};
    std::string key_name;
    uint32_t version = 0;
    VersionHandle handle;
    bool exhausted = false;  // the version reached its limit: rotate and retry
  };

  KeyHierarchy(pkcs11::Token& token, std::unique_ptr<KeyStore> store, const Clock& clock,
               LifecycleOptions lifecycle);
  Status Load();
  // Migration to hardened token objects (kek_migration.cc), at start-up only.
  // A global key made before hardening protects nothing yet: it is replaced.
  Status EnsureGlobalKey(LabelMap& by_label, std::string_view label, bool hmac);
  // Moves every key whose KEK (or tenant root) was made before hardening to a
  // new hardened KEK, one keystore transaction per tenant, and destroys the
  // old objects through the destroy queue.
  Status HardenKeks(const LabelMap& by_label);
  Result<size_t> HardenTenantKeks(Tenant& tenant, const LabelMap& by_label);
  // The unhardened wrapping key a key's versions must leave, if any.
  Result<std::optional<pkcs11::ObjectHandle>> KekToReplace(const Tenant& tenant, const Key& key);
  // Destroys token objects left with `label` by a migration a crash cut short.
  Status DestroyLeftovers(const LabelMap& by_label, const std::string& label);

  // New keys and versions (keys.cc).
  Result<KeyRecord> NewKeyRecord(std::string_view tenant, std::string_view name,
                                 std::string_view description, int64_t now);
  Result<KeyVersionRecord> NewVersion(const KeyId& key_id, uint32_t version,
                                      pkcs11::ObjectHandle kek, int64_t now);
  // A new key's record, KEK and first version; the KEK is destroyed again on
  // failure. The caller stores the key (and destroys the KEK if that fails).
  struct NewKeyParts {
    KeyRecord record;
    KeyVersionRecord first_version;
    pkcs11::ObjectHandle kek = 0;
  };
  Result<NewKeyParts> MakeKey(std::string_view tenant, std::string_view name,
                              std::string_view description, int64_t now);
  // The catalog's entry for a new key.
  static std::unique_ptr<Key> CatalogKey(NewKeyParts&& parts);
  void DestroyNewKeks(const std::vector<pkcs11::ObjectHandle>& keks, std::string_view tenant);
  // Provisions a new tenant's default keys and aliases in one unit of work.
  Status ProvisionTenant(const TenantRecord& tenant, std::vector<pkcs11::ObjectHandle>& keks);
  // Adds a version to `key` (write_mu_ held).
  Status AddVersion(const Key& key);
  // Looks up a serving tenant's key for a lifecycle change (write_mu_ held).
  Result<Key*> KeyToChange(std::string_view tenant, std::string_view key_ref) const;
  // Looks up a tenant for a change (write_mu_ held); `serving`: not pending deletion.
  Result<Tenant*> TenantToChange(std::string_view tenant, bool serving) const;
  Status CheckWindow(int64_t window_seconds) const;
  Status CheckRotationPeriod(std::optional<int64_t> period_seconds) const;

  Result<AliasInfo> PutAlias(std::string_view tenant, std::string_view alias,
                             std::string_view key_name, bool create);

  // Encryption (crypto.cc). Unwraps on first use; safe with the catalog's
  // read lock held.
  Result<VersionHandle> HandleFor(const Tenant& tenant, const Key& key,
                                  const Version& version) const;
  // A version's handle looked up again: for a request whose handle went stale
  // (the token reconnected) between its lookup and its token call.
  Result<VersionHandle> RefreshHandle(std::string_view tenant, const KeyId& key_id,
                                      uint32_t version) const;
  // The newest version of a usable key, its encryption counted (the nonce
  // budget), outside the catalog's lock.
  Result<UsableVersion> UsableLatest(std::string_view tenant, std::string_view key_ref) const;
  // Rotates the key if `version` is still its newest (write_mu_ not held).
  Status RotateExhausted(const KeyId& key_id, uint32_t version);

  // Shredding (shredder.cc; write_mu_ held): forget in the keystore and the
  // catalog, then queue the token objects for destruction.
  Status ShredKey(const Key& key, int64_t now);
  Status ShredTenant(const Tenant& tenant, int64_t now);

  // Constant after construction.
  pkcs11::Token& token_;
  std::unique_ptr<KeyStore> store_;
  const Clock& clock_;
  const LifecycleOptions lifecycle_;
  const std::unique_ptr<keystore_internal::Catalog> catalog_;             // guarded by its own lock
  const std::unique_ptr<keystore_internal::DestroyQueue> destroy_queue_;  // its own lock
  std::unique_ptr<AccessDirectory> access_;  // set by Load; its own locks

  // Lock order: write_mu_, then the catalog's lock, then unwrap_mu_; a
  // version's reservation mutex and the destroy queue's are taken with no
  // catalog lock held.
  std::mutex write_mu_;           // serializes changes: keystore write, then catalog update
  mutable std::mutex unwrap_mu_;  // one unwrap per version, ever
};

}  // namespace kmsd
