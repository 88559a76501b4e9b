// The catalog: KeyHierarchy's in-memory copy of the keystore's tenants, keys,
// versions and aliases, with the token handles they need, and the lookups
// every operation starts with. Private to keystore/.
//
// Contract. The maps are guarded by the catalog's shared mutex: lookups and
// Describe* are called with ReadLock() (or WriteLock()) held, changes with
// WriteLock() held. KeyHierarchy makes every change with its write_mu_ held
// too (changes are serialized: keystore write first, then the catalog), so a
// Tenant* or Key* found under the read lock stays valid for the holder of
// write_mu_ after the read lock is dropped. No keystore write (no fsync)
// happens under the catalog's lock; the token calls under it are a version's
// first unwrap (HandleFor, read lock) and, when a version is forgotten and no
// request holds it, the destruction of its session object (write lock).
//
// One daemon per database: the catalog is loaded once at start-up and sees
// no change another process makes to the keystore afterwards.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "keystore/hierarchy.h"
#include "keystore/internal/nonce_budget.h"

namespace kmsd {

// A key version unwrapped into a session object of the token. The object is
// destroyed when the last holder lets go: the catalog holds one reference
// while the version can be used, and every request that uses the handle holds
// another until its token call returns, so no request can ever use a handle
// that was destroyed (and perhaps reused by the module for another key).
// The object lives in one generation of the token's sessions: after the token
// reconnected it is gone, the token refuses its handle, and HandleFor unwraps
// the version again (pkcs11/token.h, "Losing the token").
class UnwrappedVersion {
 public:
  UnwrappedVersion(pkcs11::Token& token, pkcs11::KeyRef key) : token_(token), key_(key) {}
  ~UnwrappedVersion() { token_.DestroySessionObject(key_); }
  UnwrappedVersion(const UnwrappedVersion&) = delete;
  UnwrappedVersion& operator=(const UnwrappedVersion&) = delete;
  const pkcs11::KeyRef& key() const { return key_; }
  // False once the token has reconnected since the unwrap.
  bool current() const { return key_.generation == token_.generation(); }

 private:
  pkcs11::Token& token_;
  const pkcs11::KeyRef key_;
};

// CKA_LABEL of a key's first KEK: tenants/<tenant>/keys/<key id in hex>.
std::string KekLabel(std::string_view tenant, const KeyId& id);

namespace keystore_internal {

using VersionHandle = std::shared_ptr<const UnwrappedVersion>;

struct Version {
  // Whatever the store has reserved counts as used: it may have been, before a crash.
  explicit Version(KeyVersionRecord&& record);

  uint32_t number = 0;
  Bytes wrapped;  // changed only by the KEK migration, with write_mu_ and WriteLock held
  int64_t created_at = 0;
  // Empty until first use and again once the version is forgotten (shredded);
  // replaced when the token reconnected since (not current());
  // atomic: read without the catalog's lock, stored under unwrap_mu_.
  mutable std::atomic<VersionHandle> unwrapped;
  // Shared so that an encryption can count after dropping the catalog's lock.
  const std::shared_ptr<NonceBudget> budget;
};

struct Key {
  KeyRecord record;
  // Handle of the token KEK named by record.kek_label; nullopt if the key has
  // none (made before schema 3) or the token no longer has it (shredded).
  std::optional<pkcs11::ObjectHandle> kek;
  std::vector<std::unique_ptr<Version>> versions;  // versions[i].number == i + 1
};

struct Tenant {
  TenantRecord record;
  std::optional<pkcs11::ObjectHandle> root;  // nullopt: the token no longer has it
  std::map<std::string, std::unique_ptr<Key>, std::less<>> keys;  // by name
  std::map<std::string, AliasRecord, std::less<>> aliases;        // by alias name
  // The tenant policy's key_rotation_days, in seconds: no key of the tenant
  // goes longer without a new version (set by the daemon; not stored here).
  std::optional<int64_t> rotation_ceiling_seconds;
};

using LabelMap = std::map<std::string, pkcs11::ObjectHandle, std::less<>>;

// The key's KEK, or for a key made before schema 3 its tenant's root;
// NOT_FOUND when the token no longer has it (shredded).
Result<pkcs11::ObjectHandle> WrappingKeyOf(const Tenant& tenant, const Key& key);

// How often `key` rotates: its own period or the tenant's ceiling,
// whichever is shorter; nullopt when neither is set.
std::optional<int64_t> EffectiveRotationPeriod(const Tenant& tenant, const Key& key);

// KEY_PENDING_DELETION for a key pending deletion.
Status KeyPendingDeletion(const KeyRecord& key);
// What every use of a key (encrypt, decrypt) requires.
Status CheckKeyUsable(const KeyRecord& key);

class Catalog {
 public:
  using TenantMap = std::map<std::string, std::unique_ptr<Tenant>, std::less<>>;

  std::shared_lock<std::shared_mutex> ReadLock() const { return std::shared_lock(mu_); }
  std::unique_lock<std::shared_mutex> WriteLock() { return std::unique_lock(mu_); }

  // Fills an empty catalog from the keystore's records, finding each
  // tenant's root and key's KEK among the token's objects (WriteLock held).
  Status Load(KeyStoreSnapshot&& snapshot, const LabelMap& by_label);

  // Lookups (ReadLock or WriteLock held). FindTenant finds a tenant in any
  // state; ServingTenant one that is not pending deletion.
  Result<const Tenant*> FindTenant(std::string_view tenant) const;
  Result<const Tenant*> ServingTenant(std::string_view tenant) const;
  Result<const Key*> ResolveKey(const Tenant& tenant, std::string_view key_ref) const;
  // nullptr if no key has that id.
  const Key* KeyById(const KeyId& id) const;
  const TenantMap& tenants() const { return tenants_; }
  size_t TenantCount() const { return tenants_.size(); }
  size_t KeyCount() const { return keys_by_id_.size(); }
  TenantInfo DescribeTenant(const Tenant& tenant) const;
  KeyInfo Describe(const Key& key) const;

  // Changes (WriteLock held).
  void AddTenant(std::unique_ptr<Tenant> tenant);
  Key& AddKey(std::string_view tenant, std::unique_ptr<Key> key);
  // Forgets the key (its aliases go with it) or the tenant (with its keys),
  // dropping the catalog's hold on their session objects.
  void ForgetKey(const Key& key);
  void ForgetTenant(const Tenant& tenant);
  // For changes to a tenant the caller looked up (write_mu_ held).
  Tenant& Mutable(const Tenant& tenant) { return const_cast<Tenant&>(tenant); }
  Key& Mutable(const Key& key) { return const_cast<Key&>(key); }

 private:
  Status LoadKeys(std::vector<KeyRecord>&& keys, const LabelMap& by_label);

  mutable std::shared_mutex mu_;
  TenantMap tenants_;                       // guarded by mu_
  std::map<KeyId, const Key*> keys_by_id_;  // guarded by mu_; points into tenants_
};

}  // namespace keystore_internal
}  // namespace kmsd
