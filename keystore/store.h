// KeyStore: durable records of tenants, keys, key versions and aliases, and
// of who may use them: each tenant's principals and their API keys.
//
// The store holds only wrapped key material: a key version's bytes are an
// AES-256 key wrapped (RFC 5649) under its key's own KEK in the token (keys
// made before schema 3 were wrapped under a per-tenant root; kmsd moves them
// to KEKs of their own at start, see ReplaceKeks). The
// daemon keeps a catalog in memory and goes to the store at start-up
// (LoadAll) and for every change; each change is one transaction and is
// durable when the call returns (the daemon replies only after that). Several
// changes that must land together go in one UnitOfWork (Apply).
//
// One daemon per database. The daemon loads the catalog once and does not
// see changes another process makes to the same database afterwards; the
// one thing that is safe to share today is the nonce budget: two processes
// reserving encryptions of a version (ReserveEncryptionRange) never get
// overlapping ranges (DESIGN.md invariant 6).
//
// Implementations: SQLite (embedded default, OpenSqliteKeyStore); the
// interface is shaped so that a PostgreSQL store can implement it later.
// Implementations are thread-safe: calls may come from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocol/ciphertext.h"
#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd {

// A version's reservation when nothing is known of how many encryptions it
// did (versions from before schema 3, versions of a restored backup): the
// most NIST SP 800-38D allows, so that the key rotates on its next encryption.
inline constexpr uint64_t kAllEncryptionsReserved = uint64_t{1} << 32;

struct TenantRecord {
  std::string name;
  // CKA_LABEL of the tenant's root key in the token, which wraps the versions
  // of keys made before schema 3; empty for tenants made since.
  std::string root_label;
  int64_t created_at = 0;  // unix seconds
  // Set while the tenant is pending deletion: when its window ends.
  std::optional<int64_t> deletion_due_at;
};

struct KeyRecord {
  KeyId id{};
  std::string tenant;
  std::string name;
  std::string description;
  int64_t created_at = 0;
  bool enabled = true;
  // Set while the key is pending deletion (then `enabled` is false): when its
  // window ends.
  std::optional<int64_t> deletion_due_at;
  // CKA_LABEL of the key's own key-encryption key in the token, which wraps
  // its versions; empty for keys made before schema 3 (wrapped under their
  // tenant's root).
  std::string kek_label;
  // Set when the key rotates by itself: a new version this long after the
  // newest one.
  std::optional<int64_t> rotation_period_seconds;
  // Versions below this one no longer decrypt.
  uint32_t min_decryption_version = 1;
};

struct KeyVersionRecord {
  KeyId key_id{};
  uint32_t version = 0;  // 1, 2, ...
  Bytes wrapped;         // CKM_AES_KEY_WRAP_PAD under the key's KEK (or tenant root)
  int64_t created_at = 0;
  // Encryptions reserved for this version: an upper bound of those it did.
  uint64_t reserved_encryptions = 0;
};

// One tenant's keys moved to new KEKs (KeyStore::ReplaceKeks).
struct KekReplacement {
  struct Key {
    KeyId id{};
    std::string kek_label;  // the new KEK
    // Every version of the key, rewrapped under the new KEK: (version, wrapped).
    std::vector<std::pair<uint32_t, Bytes>> versions;
  };
  std::string tenant;
  std::vector<Key> keys;
  // Forget the tenant's root (no key is wrapped under it any more).
  bool clear_tenant_root = false;
  // The replaced KEKs (and root), queued for destruction.
  std::vector<std::string> token_labels_to_destroy;
};

struct AliasRecord {
  std::string tenant;
  std::string name;  // "alias/..."
  KeyId key_id{};
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// A tenant's principal: a caller identity with roles (names the policy
// defines; the store keeps them as given). When `uids` or `gids` is not
// empty, the principal is accepted only from a peer with one of those uids,
// or with one of those gids as its primary or a supplementary group.
struct PrincipalRecord {
  std::string tenant;
  std::string name;
  std::vector<std::string> roles;
  std::vector<uint64_t> uids;
  std::vector<uint64_t> gids;
  int64_t created_at = 0;
};

// An API key of a principal. The store never holds the secret: only its
// HMAC-SHA256 under a token key (`digest`), so a copy of the keystore gives
// nobody a usable key.
struct ApiKeyRecord {
  std::string id;  // 16 lowercase hex digits, also in the secret's text
  std::string tenant;
  std::string principal;
  Bytes digest;
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> revoked_at;
  std::optional<int64_t> last_used_at;
};

// A tenant's custom role: the roles it inherits (built-in or custom) and the
// permission statements it adds, as given (policy/roles.h parses them).
struct RoleRecord {
  std::string tenant;
  std::string name;
  std::vector<std::string> inherits;
  std::vector<std::string> allow;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// A tenant's policy document (the seeds' security_policies and
// resource_quotas, YAML), as put: policy/tenant_policy.h reads it.
struct TenantPolicyRecord {
  std::string tenant;
  std::string document;
  int64_t updated_at = 0;
};

// A principal's TOTP seed, wrapped by the daemon under the tenant's
// secrets-key (the keystore holds no usable seed).
struct MfaSeedRecord {
  std::string tenant;
  std::string principal;
  Bytes wrapped;
  int64_t created_at = 0;
};

// A tenant's custom roles, by name.
using RoleCatalog = std::map<std::string, RoleRecord, std::less<>>;

// A grant, as in AWS KMS: `principal` may do `operations` (grant operation
// names, policy/grants.h) with one key, while the request's encryption
// context holds every pair of `context`, until `expires_at` or retirement.
struct GrantRecord {
  std::string id;  // 16 lowercase hex digits
  std::string tenant;
  std::string principal;
  KeyId key_id{};
  std::vector<std::string> operations;
  std::map<std::string, std::string> context;
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> retired_at;
};

// What a backup or a restored keystore holds, counted in the copy itself.
struct KeyStoreCopyInfo {
  std::string path;
  uint64_t bytes = 0;
  int schema_version = 0;
  int64_t tenants = 0;
  int64_t keys = 0;
};

struct KeyStoreSnapshot {
  std::vector<TenantRecord> tenants;
  std::vector<KeyRecord> keys;
  std::vector<KeyVersionRecord> versions;
  std::vector<AliasRecord> aliases;
  std::vector<PrincipalRecord> principals;
  std::vector<ApiKeyRecord> api_keys;
  std::vector<RoleRecord> roles;
  std::vector<GrantRecord> grants;
  std::vector<TenantPolicyRecord> policies;
  std::vector<MfaSeedRecord> mfa_seeds;
  // Labels of token objects queued for destruction and not yet dequeued.
  std::vector<std::string> token_objects_to_destroy;
};

// The changes a UnitOfWork collects: one per single change of KeyStore below,
// with the same fields and rules.
namespace store_change {
struct CreateTenant {
  TenantRecord tenant;  // its keys and aliases are changes of their own
};
struct CreateKey {
  KeyRecord key;
  KeyVersionRecord first_version;
};
struct AddKeyVersion {
  KeyVersionRecord version;
};
struct CreateAlias {
  AliasRecord alias;
};
struct UpdateAlias {
  std::string tenant;
  std::string name;
  KeyId key_id{};
  int64_t updated_at = 0;
};
struct DeleteAlias {
  std::string tenant;
  std::string name;
};
struct SetKeyEnabled {
  KeyId key_id{};
  bool enabled = true;
};
struct ScheduleKeyDeletion {
  KeyId key_id{};
  int64_t due_at = 0;
};
struct CancelKeyDeletion {
  KeyId key_id{};
};
struct ScheduleTenantDeletion {
  std::string tenant;
  int64_t due_at = 0;
};
struct CancelTenantDeletion {
  std::string tenant;
};
struct SetRotationPeriod {
  KeyId key_id{};
  std::optional<int64_t> period_seconds;
};
struct SetMinDecryptionVersion {
  KeyId key_id{};
  uint32_t version = 1;
};
struct ShredKey {
  KeyId key_id{};
  std::vector<std::string> token_labels;
  int64_t queued_at = 0;
};
struct ShredTenant {
  std::string tenant;
  std::vector<std::string> token_labels;
  int64_t queued_at = 0;
};
struct TokenObjectDestroyed {
  std::string label;
};
struct ReplaceKeks {
  KekReplacement change;
  int64_t queued_at = 0;
};
// ALREADY_EXISTS if (tenant, name) is taken; NOT_FOUND if the tenant is not.
struct CreatePrincipal {
  PrincipalRecord principal;
};
// NOT_FOUND if the principal does not exist.
struct SetPrincipalRoles {
  std::string tenant;
  std::string name;
  std::vector<std::string> roles;
};
// Deletes the principal, its API keys and the grants it holds. NOT_FOUND if
// it does not exist.
struct DeletePrincipal {
  std::string tenant;
  std::string name;
};
// ALREADY_EXISTS if the id is taken; NOT_FOUND if the principal does not exist.
struct CreateApiKey {
  ApiKeyRecord key;
};
// Sets revoked_at once (a key revoked before keeps its first revoked_at).
// NOT_FOUND unless the key exists in that tenant.
struct RevokeApiKey {
  std::string tenant;
  std::string id;
  int64_t revoked_at = 0;
};
// Raises last_used_at to `used_at` (never lowers it); a key deleted since is
// not an error (nothing to record).
struct ApiKeyUsed {
  std::string id;
  int64_t used_at = 0;
};
// ALREADY_EXISTS if (tenant, name) is taken; NOT_FOUND if the tenant is not.
struct CreateRole {
  RoleRecord role;
};
// Replaces inherits, allow and updated_at. NOT_FOUND if the role does not exist.
struct UpdateRole {
  RoleRecord role;
};
// NOT_FOUND if the role does not exist.
struct DeleteRole {
  std::string tenant;
  std::string name;
};
// ALREADY_EXISTS if the id is taken; NOT_FOUND if the principal or the key
// (in that tenant) does not exist.
struct CreateGrant {
  GrantRecord grant;
};
// Sets retired_at once. NOT_FOUND unless the grant exists in that tenant.
struct RetireGrant {
  std::string tenant;
  std::string id;
  int64_t retired_at = 0;
};
// Puts (creates or replaces) a tenant's policy. NOT_FOUND unless the tenant
// exists.
struct PutTenantPolicy {
  TenantPolicyRecord policy;
};
// Sets (creates or replaces) a principal's TOTP seed. NOT_FOUND unless the
// principal exists.
struct SetMfaSeed {
  MfaSeedRecord seed;
};
}  // namespace store_change

// The changes to principals, API keys, roles, grants and tenant policies (a
// KeyStoreChange too).
using AccessChange =
    std::variant<store_change::CreatePrincipal, store_change::SetPrincipalRoles,
                 store_change::DeletePrincipal, store_change::CreateApiKey,
                 store_change::RevokeApiKey, store_change::ApiKeyUsed, store_change::CreateRole,
                 store_change::UpdateRole, store_change::DeleteRole, store_change::CreateGrant,
                 store_change::RetireGrant, store_change::PutTenantPolicy,
                 store_change::SetMfaSeed>;

using KeyStoreChange = std::variant<
    store_change::CreateTenant, store_change::CreateKey, store_change::AddKeyVersion,
    store_change::CreateAlias, store_change::UpdateAlias, store_change::DeleteAlias,
    store_change::SetKeyEnabled, store_change::ScheduleKeyDeletion, store_change::CancelKeyDeletion,
    store_change::ScheduleTenantDeletion, store_change::CancelTenantDeletion,
    store_change::SetRotationPeriod, store_change::SetMinDecryptionVersion, store_change::ShredKey,
    store_change::ShredTenant, store_change::TokenObjectDestroyed, store_change::ReplaceKeks,
    store_change::CreatePrincipal, store_change::SetPrincipalRoles, store_change::DeletePrincipal,
    store_change::CreateApiKey, store_change::RevokeApiKey, store_change::ApiKeyUsed,
    store_change::CreateRole, store_change::UpdateRole, store_change::DeleteRole,
    store_change::CreateGrant, store_change::RetireGrant, store_change::PutTenantPolicy,
    store_change::SetMfaSeed>;

// Several changes committed together by KeyStore::Apply, in the order added:
// all of them or none.
struct UnitOfWork {
  std::vector<KeyStoreChange> changes;

  UnitOfWork& Add(KeyStoreChange change) {
    changes.push_back(std::move(change));
    return *this;
  }
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  virtual Result<KeyStoreSnapshot> LoadAll() = 0;
  virtual int SchemaVersion() const = 0;

  // All or nothing. ALREADY_EXISTS if the tenant (or any key/alias) exists.
  virtual Status CreateTenant(const TenantRecord& tenant, const std::vector<KeyRecord>& keys,
                              const std::vector<KeyVersionRecord>& versions,
                              const std::vector<AliasRecord>& aliases) = 0;
  // ALREADY_EXISTS if (tenant, name) is taken; NOT_FOUND if the tenant is not.
  virtual Status CreateKey(const KeyRecord& key, const KeyVersionRecord& first_version) = 0;
  // ALREADY_EXISTS if that version exists; NOT_FOUND if the key does not.
  virtual Status AddKeyVersion(const KeyVersionRecord& version) = 0;
  // ALREADY_EXISTS if (tenant, name) is taken; NOT_FOUND if the key does not exist.
  virtual Status CreateAlias(const AliasRecord& alias) = 0;
  // NOT_FOUND if the alias or the key does not exist.
  virtual Status UpdateAlias(const std::string& tenant, const std::string& name,
                             const KeyId& key_id, int64_t updated_at) = 0;
  // NOT_FOUND if the alias does not exist.
  virtual Status DeleteAlias(const std::string& tenant, const std::string& name) = 0;

  // Lifecycle. The store records states; which changes are allowed (no
  // enabling a key pending deletion, no scheduling twice) is the caller's
  // rule. NOT_FOUND if the key or tenant does not exist.
  virtual Status SetKeyEnabled(const KeyId& key_id, bool enabled) = 0;
  // Disables the key and sets its deletion_due_at.
  virtual Status ScheduleKeyDeletion(const KeyId& key_id, int64_t due_at) = 0;
  // Clears deletion_due_at; the key stays disabled.
  virtual Status CancelKeyDeletion(const KeyId& key_id) = 0;
  virtual Status ScheduleTenantDeletion(const std::string& tenant, int64_t due_at) = 0;
  virtual Status CancelTenantDeletion(const std::string& tenant) = 0;
  // nullopt turns automatic rotation off.
  virtual Status SetRotationPeriod(const KeyId& key_id, std::optional<int64_t> period_seconds) = 0;
  virtual Status SetMinDecryptionVersion(const KeyId& key_id, uint32_t version) = 0;
  // Raises a version's reservation to `reserved` (never lowers it); NOT_FOUND
  // if the version does not exist. Not a range of its own: two processes
  // raising to the same figure would both count on it. KeyHierarchy uses
  // ReserveEncryptionRange.
  virtual Status ReserveEncryptions(const KeyId& key_id, uint32_t version, uint64_t reserved) = 0;

  // Reserves `count` (>= 1) more encryptions of a version in one atomic step
  // and returns the reservation after it, `end`: the caller's range is
  // (end - count, end], which no other caller, in this process or another
  // sharing the store, is ever given. Durable when it returns. NOT_FOUND if
  // the version does not exist. The default, for stores that one process uses
  // alone (and for decorators), reads the reservation with LoadAll and raises
  // it with ReserveEncryptions; it is not atomic between processes.
  virtual Result<uint64_t> ReserveEncryptionRange(const KeyId& key_id, uint32_t version,
                                                  uint64_t count);

  // Commits the unit's changes in one transaction, in order: all or none;
  // each change has the rules of its single call above (store_change). The
  // default, for decorators and stores without transactions, makes the
  // single calls one after another and stops at the first failure: it is
  // not atomic. SQLite overrides it.
  virtual Status Apply(const UnitOfWork& unit);

  // One change to principals or API keys, in its own transaction, with the
  // rules of store_change above.
  virtual Status WriteAccess(const AccessChange& change) = 0;

  // Crypto-shredding. One transaction forgets the key (its versions and
  // aliases) or the tenant (its keys, versions, aliases, principals and API
  // keys) and queues
  // `token_labels` for destruction; the caller destroys those token objects
  // and then calls TokenObjectDestroyed for each. A crash in between leaves
  // the queue for the next start (KeyStoreSnapshot::token_objects_to_destroy).
  virtual Status ShredKey(const KeyId& key_id, const std::vector<std::string>& token_labels,
                          int64_t queued_at) = 0;
  virtual Status ShredTenant(const std::string& tenant,
                             const std::vector<std::string>& token_labels, int64_t queued_at) = 0;
  virtual Status TokenObjectDestroyed(const std::string& label) = 0;

  // Moves keys to new KEKs in one transaction: each key's kek_label and every
  // version's wrapped bytes change, the tenant's root is forgotten if asked,
  // and the replaced token objects are queued for destruction (the caller
  // destroys them as for shredding). The key material stays the same, so every
  // ciphertext decrypts as before. NOT_FOUND if a key or version does not
  // exist; INVALID_ARGUMENT if a key's versions are not exactly those stored.
  virtual Status ReplaceKeks(const KekReplacement& change, int64_t queued_at) = 0;

  // Writes a consistent copy of the whole keystore to `path` while other
  // calls go on (they wait while the copy is taken). `path` must be absolute
  // and lexically normal, and no component of its directory may be a symlink
  // (INVALID_ARGUMENT); it must not exist, not even as a symlink
  // (ALREADY_EXISTS). The file is created with mode 0600, by this process's
  // uid, without following a symlink anywhere (CreateFileNoFollow in
  // backup_directory.h), and appears complete or not at all. Which
  // directories a request may name is the caller's rule (BackupDirectory).
  // The copy holds what the store holds: wrapped material only.
  virtual Result<KeyStoreCopyInfo> Backup(const std::string& path) = 0;
};

// Opens (creating if missing) an SQLite keystore in WAL mode with
// synchronous=FULL and applies pending schema migrations. A file that is not
// a kmsd keystore, or one from a newer kmsd, is an error, never a fresh start.
Result<std::unique_ptr<KeyStore>> OpenSqliteKeyStore(const std::string& path);

// Replaces the SQLite keystore at `keystore_path` by a copy of the backup at
// `backup_path` (written by KeyStore::Backup). No process may have the
// keystore open. The backup is copied next to the keystore, checked there
// (a kmsd keystore of a schema this kmsd knows, passing quick_check),
// migrated to the latest schema, and adjusted: every version's reservation
// becomes kAllEncryptionsReserved (encryptions made after the backup was
// taken are not in it, so every key rotates on its next encryption), and the
// token objects the replaced keystore still had queued for destruction are
// queued in the copy too (so a backup cannot bring a shredded key back), and
// the copy's API keys that the replaced keystore no longer honours (revoked,
// or deleted with their principal or tenant) are revoked in the copy (so a
// backup cannot bring a revoked key back either). The
// copy is then made durable and renamed over the keystore; the old keystore's -wal and -shm
// files are removed first so that SQLite cannot replay them onto the restored
// file. Any failure leaves the keystore as it was: NOT_FOUND for a missing
// backup, INVALID_ARGUMENT for a file that is not a kmsd keystore, INTERNAL
// otherwise. The backup file is only read.
Result<KeyStoreCopyInfo> RestoreSqliteKeyStore(const std::string& backup_path,
                                               const std::string& keystore_path);

}  // namespace kmsd
