#include "keystore/hierarchy.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "keystore/internal/catalog.h"
#include "protocol/names.h"

namespace kmsd {

// Whatever the store has reserved counts as used: it may have been, before a crash.
std::unique_ptr<KeyHierarchy::Version> KeyHierarchy::VersionFrom(KeyVersionRecord&& record) {
  auto version = std::make_unique<Version>();
  version->number = record.version;
  version->wrapped = std::move(record.wrapped);
  version->created_at = record.created_at;
  version->used = record.reserved_encryptions;
  version->reserved = record.reserved_encryptions;
  return version;
}

namespace {

// INVALID_ARGUMENT unless min <= seconds <= max.
Status CheckSeconds(std::string_view what, int64_t seconds, int64_t min, int64_t max) {
  if (seconds >= min && seconds <= max) return OkStatus();
  return Status(Code::kInvalidArgument, std::string(what) + " must be " + std::to_string(min) +
                                            " to " + std::to_string(max) + " seconds");
}

Status TenantNotFound(std::string_view tenant) {
  return Status(Code::kNotFound, "tenant '" + std::string(tenant) + "' does not exist");
}

Status KeyPendingDeletion(const KeyRecord& key) {
  return Status(Code::kKeyPendingDeletion, "key '" + key.name + "' is pending deletion (due at " +
                                               std::to_string(*key.deletion_due_at) + ")");
}

// What every use of a key (encrypt, decrypt) requires.
Status CheckKeyUsable(const KeyRecord& key) {
  if (key.deletion_due_at) return KeyPendingDeletion(key);
  if (!key.enabled) return Status(Code::kKeyDisabled, "key '" + key.name + "' is disabled");
  return OkStatus();
}

}  // namespace

std::string KekLabel(std::string_view tenant, const KeyId& id) {
  return "tenants/" + std::string(tenant) + "/keys/" + KeyIdToHex(id);
}

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kEnabled:
      return "enabled";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kPendingDeletion:
      return "pending_deletion";
    default:
      return "unknown";
  }
}

KeyHierarchy::KeyHierarchy(pkcs11::Token& token, std::unique_ptr<KeyStore> store,
                           const Clock& clock, LifecycleOptions lifecycle)
    : token_(token), store_(std::move(store)), clock_(clock), lifecycle_(lifecycle) {}

// Unwrapped versions are destroyed with the catalog, when no request holds them.
KeyHierarchy::~KeyHierarchy() = default;

Result<std::unique_ptr<KeyHierarchy>> KeyHierarchy::Open(pkcs11::Token& token,
                                                         std::unique_ptr<KeyStore> store,
                                                         const Clock& clock,
                                                         LifecycleOptions lifecycle) {
  if (lifecycle.min_pending_window_seconds < 1 ||
      lifecycle.min_pending_window_seconds > kDefaultMinPendingWindowSeconds) {
    return Error(Code::kInvalidArgument, "min_pending_window_seconds must be 1 to " +
                                             std::to_string(kDefaultMinPendingWindowSeconds));
  }
  if (lifecycle.min_rotation_period_seconds < 1 ||
      lifecycle.min_rotation_period_seconds > kDefaultMinRotationPeriodSeconds) {
    return Error(Code::kInvalidArgument, "min_rotation_period_seconds must be 1 to 86400");
  }
  if (lifecycle.max_encryptions_per_version < 1 ||
      lifecycle.max_encryptions_per_version > kMaxEncryptionsPerVersion) {
    return Error(Code::kInvalidArgument, "max_encryptions_per_version must be 1 to 2^32");
  }
  std::unique_ptr<KeyHierarchy> hierarchy(
      new KeyHierarchy(token, std::move(store), clock, lifecycle));
  RETURN_IF_ERROR(hierarchy->Load());
  return hierarchy;
}

Status KeyHierarchy::Load() {
  ASSIGN_OR_RETURN(std::vector<pkcs11::TokenObject> objects, token_.ListTokenSecretKeys());
  LabelMap by_label;
  for (auto& object : objects) by_label.emplace(object.label, object.handle);
  RETURN_IF_ERROR(EnsureGlobalKey(by_label, kPlatformMasterKeyLabel, /*hmac=*/false));
  RETURN_IF_ERROR(EnsureGlobalKey(by_label, kAuditLogKeyLabel, /*hmac=*/true));

  ASSIGN_OR_RETURN(KeyStoreSnapshot snapshot, store_->LoadAll());
  // A shredding a crash interrupted is finished before anything is served.
  if (!snapshot.token_objects_to_destroy.empty()) {
    QueueTokenObjects(snapshot.token_objects_to_destroy);
    DestroyQueuedTokenObjects();
    for (const std::string& label : snapshot.token_objects_to_destroy) by_label.erase(label);
  }
  std::unique_lock lock(mu_);
  for (auto& record : snapshot.tenants) {
    auto tenant = std::make_unique<Tenant>();
    if (auto it = by_label.find(record.root_label);
        !record.root_label.empty() && it != by_label.end()) {
      tenant->root = it->second;
    } else if (!record.root_label.empty()) {
      spdlog::error("tenant {}: root key {} is not in the token; its older keys cannot be used",
                    record.name, record.root_label);
    }
    tenant->record = std::move(record);
    tenants_.emplace(tenant->record.name, std::move(tenant));
  }
  for (auto& record : snapshot.keys) {
    auto tenant = tenants_.find(record.tenant);
    if (tenant == tenants_.end()) return Status(Code::kInternal, "keystore: key of unknown tenant");
    auto key = std::make_unique<Key>();
    key->record = std::move(record);
    if (auto it = by_label.find(key->record.kek_label);
        !key->record.kek_label.empty() && it != by_label.end()) {
      key->kek = it->second;
    } else if (!key->record.kek_label.empty()) {
      spdlog::error(
          "tenant {}: key {} ({}): its KEK is not in the token (shredded); it cannot "
          "be used",
          key->record.tenant, key->record.name, KeyIdToHex(key->record.id));
    }
    keys_by_id_[key->record.id] = key.get();
    tenant->second->keys.emplace(key->record.name, std::move(key));
  }
  for (auto& record : snapshot.versions) {
    auto key = keys_by_id_.find(record.key_id);
    if (key == keys_by_id_.end() || record.version != key->second->versions.size() + 1) {
      return Status(Code::kInternal, "keystore: key versions are not contiguous");
    }
    key->second->versions.push_back(VersionFrom(std::move(record)));
  }
  for (auto& record : snapshot.aliases) {
    auto tenant = tenants_.find(record.tenant);
    if (tenant == tenants_.end())
      return Status(Code::kInternal, "keystore: alias of unknown tenant");
    tenant->second->aliases.emplace(record.name, std::move(record));
  }
  for (const auto& [id, key] : keys_by_id_) {
    if (key->versions.empty()) return Status(Code::kInternal, "keystore: key without versions");
  }
  spdlog::info("keystore loaded: {} tenants, {} keys", tenants_.size(), keys_by_id_.size());
  lock.unlock();
  return HardenKeks(by_label);
}

Result<KeyRecord> KeyHierarchy::NewKeyRecord(std::string_view tenant, std::string_view name,
                                             std::string_view description, int64_t now) {
  KeyRecord record;
  RETURN_IF_ERROR(token_.GenerateRandom(record.id));
  record.tenant = tenant;
  record.name = name;
  record.description = description;
  record.created_at = now;
  record.enabled = true;
  record.kek_label = KekLabel(tenant, record.id);
  return record;
}

Result<KeyVersionRecord> KeyHierarchy::NewVersion(const KeyId& key_id, uint32_t version,
                                                  pkcs11::ObjectHandle kek, int64_t now) {
  KeyVersionRecord record;
  record.key_id = key_id;
  record.version = version;
  record.created_at = now;
  ASSIGN_OR_RETURN(record.wrapped, token_.GenerateWrappedAesKey(kek));
  return record;
}

Result<KeyHierarchy::NewKeyParts> KeyHierarchy::MakeKey(std::string_view tenant,
                                                        std::string_view name,
                                                        std::string_view description, int64_t now) {
  NewKeyParts parts;
  ASSIGN_OR_RETURN(parts.record, NewKeyRecord(tenant, name, description, now));
  ASSIGN_OR_RETURN(parts.kek, token_.CreateTokenWrappingKey(parts.record.kek_label));
  auto first = NewVersion(parts.record.id, 1, parts.kek, now);
  if (!first) {
    DestroyNewKeks({parts.kek}, tenant);
    return Error(first.error());
  }
  parts.first_version = std::move(*first);
  return parts;
}

void KeyHierarchy::DestroyNewKeks(const std::vector<pkcs11::ObjectHandle>& keks,
                                  std::string_view tenant) {
  for (pkcs11::ObjectHandle kek : keks) {
    if (!token_.DestroyObject(kek).ok()) {
      spdlog::error("tenant {}: could not destroy a new key's KEK after a failed create", tenant);
    }
  }
}

std::unique_ptr<KeyHierarchy::Key> KeyHierarchy::CatalogKey(
    KeyRecord record, pkcs11::ObjectHandle kek, std::vector<KeyVersionRecord> versions) const {
  auto key = std::make_unique<Key>();
  key->record = std::move(record);
  key->kek = kek;
  for (KeyVersionRecord& record : versions) key->versions.push_back(VersionFrom(std::move(record)));
  return key;
}

Result<TenantInfo> KeyHierarchy::CreateTenant(std::string_view name) {
  RETURN_IF_ERROR(ValidateTenantName(name));
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    if (tenants_.contains(name)) {
      return Error(Code::kAlreadyExists, "tenant '" + std::string(name) + "' already exists");
    }
  }
  const int64_t now = clock_.NowSeconds();
  TenantRecord tenant{std::string(name), "", now, std::nullopt};

  // Everything below either lands in one keystore transaction or the new
  // KEKs are destroyed again: a failure half way leaves nothing behind.
  std::vector<pkcs11::ObjectHandle> keks;
  auto provision = [&]() -> Status {
    std::vector<NewKeyParts> parts;
    std::vector<KeyRecord> keys;
    std::vector<KeyVersionRecord> versions;
    std::vector<AliasRecord> aliases;
    for (const auto& default_key : kDefaultTenantKeys) {
      ASSIGN_OR_RETURN(NewKeyParts part, MakeKey(name, default_key.name, "", now));
      keks.push_back(part.kek);
      aliases.push_back(
          {std::string(name), std::string(default_key.alias), part.record.id, now, now});
      keys.push_back(part.record);
      versions.push_back(part.first_version);
      parts.push_back(std::move(part));
    }
    RETURN_IF_ERROR(store_->CreateTenant(tenant, keys, versions, aliases));

    auto entry = std::make_unique<Tenant>();
    entry->record = tenant;
    for (size_t i = 0; i < parts.size(); ++i) {
      std::string key_name = parts[i].record.name;
      entry->keys.emplace(std::move(key_name), CatalogKey(std::move(parts[i].record), parts[i].kek,
                                                          {std::move(parts[i].first_version)}));
      entry->aliases.emplace(aliases[i].name, aliases[i]);
    }
    std::unique_lock lock(mu_);
    for (const auto& [key_name, key] : entry->keys) keys_by_id_[key->record.id] = key.get();
    tenants_.emplace(tenant.name, std::move(entry));
    return OkStatus();
  };
  if (Status status = provision(); !status.ok()) {
    DestroyNewKeks(keks, name);
    return Error(std::move(status));
  }
  spdlog::info("tenant {} created", name);
  return DescribeTenant(name);
}

Result<const KeyHierarchy::Tenant*> KeyHierarchy::FindTenant(std::string_view tenant) const {
  RETURN_IF_ERROR(ValidateTenantName(tenant));
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return Error(TenantNotFound(tenant));
  return it->second.get();
}

Result<const KeyHierarchy::Tenant*> KeyHierarchy::ServingTenant(std::string_view name) const {
  ASSIGN_OR_RETURN(const Tenant* tenant, FindTenant(name));
  if (tenant->record.deletion_due_at) {
    return Error(Code::kKeyPendingDeletion,
                 "tenant '" + tenant->record.name + "' is pending deletion (due at " +
                     std::to_string(*tenant->record.deletion_due_at) + ")");
  }
  return tenant;
}

TenantInfo KeyHierarchy::DescribeTenant(const Tenant& tenant) const {
  return TenantInfo{tenant.record.name, tenant.record.created_at, tenant.keys.size(),
                    tenant.aliases.size(), tenant.record.deletion_due_at};
}

Result<TenantInfo> KeyHierarchy::DescribeTenant(std::string_view name) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, FindTenant(name));
  return DescribeTenant(*tenant);
}

std::vector<TenantInfo> KeyHierarchy::ListTenants() const {
  std::shared_lock lock(mu_);
  std::vector<TenantInfo> out;
  for (const auto& [name, tenant] : tenants_) out.push_back(DescribeTenant(*tenant));
  return out;
}

Status KeyHierarchy::CheckNotPendingDeletion(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = tenants_.find(name);
  if (it == tenants_.end()) return OkStatus();
  return StatusOf(ServingTenant(name));
}

Status KeyHierarchy::CheckWindow(int64_t window_seconds) const {
  return CheckSeconds("the pending window", window_seconds, lifecycle_.min_pending_window_seconds,
                      kMaxPendingWindowSeconds);
}

Result<TenantInfo> KeyHierarchy::ScheduleTenantDeletion(std::string_view name,
                                                        int64_t window_seconds) {
  RETURN_IF_ERROR(CheckWindow(window_seconds));
  std::lock_guard write(write_mu_);
  Tenant* tenant;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* found, ServingTenant(name));
    // Changes (and removals) are serialized by write_mu_, held here.
    tenant = const_cast<Tenant*>(found);
  }
  const int64_t due_at = clock_.NowSeconds() + window_seconds;
  RETURN_IF_ERROR(store_->ScheduleTenantDeletion(tenant->record.name, due_at));
  std::unique_lock lock(mu_);
  tenant->record.deletion_due_at = due_at;
  spdlog::info("tenant {}: deletion scheduled at {}", name, due_at);
  return DescribeTenant(*tenant);
}

Result<TenantInfo> KeyHierarchy::CancelTenantDeletion(std::string_view name) {
  std::lock_guard write(write_mu_);
  Tenant* tenant;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* found, FindTenant(name));
    if (!found->record.deletion_due_at) {
      return Error(Code::kInvalidArgument,
                   "tenant '" + std::string(name) + "' is not pending deletion");
    }
    tenant = const_cast<Tenant*>(found);
  }
  RETURN_IF_ERROR(store_->CancelTenantDeletion(tenant->record.name));
  std::unique_lock lock(mu_);
  tenant->record.deletion_due_at.reset();
  spdlog::info("tenant {}: deletion cancelled", name);
  return DescribeTenant(*tenant);
}

Result<const KeyHierarchy::Key*> KeyHierarchy::ResolveKey(const Tenant& tenant,
                                                          std::string_view key_ref) const {
  RETURN_IF_ERROR(ValidateKeyReference(key_ref));
  if (IsAliasReference(key_ref)) {
    auto alias = tenant.aliases.find(key_ref);
    if (alias == tenant.aliases.end()) {
      return Error(Code::kNotFound, "alias '" + std::string(key_ref) +
                                        "' does not exist in tenant '" + tenant.record.name + "'");
    }
    return keys_by_id_.at(alias->second.key_id);
  }
  auto key = tenant.keys.find(key_ref);
  if (key == tenant.keys.end()) {
    return Error(Code::kNotFound, "key '" + std::string(key_ref) + "' does not exist in tenant '" +
                                      tenant.record.name + "'");
  }
  return key->second.get();
}

KeyInfo KeyHierarchy::Describe(const Key& key) const {
  KeyInfo info{key.record.id,
               key.record.tenant,
               key.record.name,
               key.record.description,
               key.record.created_at,
               key.record.enabled,
               key.record.deletion_due_at ? KeyState::kPendingDeletion
               : key.record.enabled       ? KeyState::kEnabled
                                          : KeyState::kDisabled,
               key.record.deletion_due_at,
               static_cast<uint32_t>(key.versions.size()),
               key.record.min_decryption_version,
               key.record.rotation_period_seconds,
               std::nullopt,
               {}};
  if (key.record.rotation_period_seconds) {
    info.next_rotation_at = key.versions.back()->created_at + *key.record.rotation_period_seconds;
  }
  const Tenant& tenant = *tenants_.find(key.record.tenant)->second;
  for (const auto& [alias, record] : tenant.aliases) {
    if (record.key_id == key.record.id) info.aliases.push_back(alias);
  }
  return info;
}

Result<KeyInfo> KeyHierarchy::CreateKey(std::string_view tenant_name, std::string_view name,
                                        std::string_view description) {
  RETURN_IF_ERROR(ValidateKeyName(name));
  if (description.size() > 1024) {
    return Error(Code::kInvalidArgument, "key description is longer than 1024 bytes");
  }
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    if (tenant->keys.contains(name)) {
      return Error(Code::kAlreadyExists, "key '" + std::string(name) +
                                             "' already exists in tenant '" +
                                             std::string(tenant_name) + "'");
    }
  }
  const int64_t now = clock_.NowSeconds();
  ASSIGN_OR_RETURN(NewKeyParts parts, MakeKey(tenant_name, name, description, now));
  if (Status stored = store_->CreateKey(parts.record, parts.first_version); !stored.ok()) {
    DestroyNewKeks({parts.kek}, tenant_name);
    return Error(std::move(stored));
  }
  std::unique_ptr<Key> key =
      CatalogKey(std::move(parts.record), parts.kek, {std::move(parts.first_version)});
  std::unique_lock lock(mu_);
  Key* raw = key.get();
  keys_by_id_[raw->record.id] = raw;
  tenants_.find(tenant_name)->second->keys.emplace(std::string(name), std::move(key));
  spdlog::info("tenant {}: key {} ({}) created", tenant_name, name, KeyIdToHex(raw->record.id));
  return Describe(*raw);
}

Result<KeyInfo> KeyHierarchy::DescribeKey(std::string_view tenant_name,
                                          std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  return Describe(*key);
}

Result<std::vector<KeyInfo>> KeyHierarchy::ListKeys(std::string_view tenant_name) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  std::vector<KeyInfo> out;
  for (const auto& [name, key] : tenant->keys) out.push_back(Describe(*key));
  return out;
}

Result<KeyInfo> KeyHierarchy::RotateKey(std::string_view tenant_name, std::string_view key_ref) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  RETURN_IF_ERROR(AddVersion(*key));
  std::shared_lock lock(mu_);
  return Describe(*key);
}

Status KeyHierarchy::AddVersion(Key& key) {
  pkcs11::ObjectHandle kek;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(kek, WrappingKeyOf(*tenants_.find(key.record.tenant)->second, key));
  }
  const uint32_t next = static_cast<uint32_t>(key.versions.size()) + 1;
  ASSIGN_OR_RETURN(KeyVersionRecord record,
                   NewVersion(key.record.id, next, kek, clock_.NowSeconds()));
  RETURN_IF_ERROR(store_->AddKeyVersion(record));
  std::unique_lock lock(mu_);
  key.versions.push_back(VersionFrom(std::move(record)));
  spdlog::info("tenant {}: key {} rotated to version {}", key.record.tenant, key.record.name, next);
  return OkStatus();
}

Result<KeyHierarchy::Key*> KeyHierarchy::KeyToChange(std::string_view tenant_name,
                                                     std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  // Changes are serialized by write_mu_ (held by the caller), so the key
  // cannot go away or change under it.
  return const_cast<Key*>(key);
}

Result<KeyInfo> KeyHierarchy::SetKeyEnabled(std::string_view tenant_name, std::string_view key_ref,
                                            bool enabled) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  if (key->record.enabled != enabled) {
    RETURN_IF_ERROR(store_->SetKeyEnabled(key->record.id, enabled));
    std::unique_lock lock(mu_);
    key->record.enabled = enabled;
    spdlog::info("tenant {}: key {} {}", tenant_name, key->record.name,
                 enabled ? "enabled" : "disabled");
  }
  std::shared_lock lock(mu_);
  return Describe(*key);
}

Result<KeyInfo> KeyHierarchy::ScheduleKeyDeletion(std::string_view tenant_name,
                                                  std::string_view key_ref,
                                                  int64_t window_seconds) {
  RETURN_IF_ERROR(CheckWindow(window_seconds));
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  const int64_t due_at = clock_.NowSeconds() + window_seconds;
  RETURN_IF_ERROR(store_->ScheduleKeyDeletion(key->record.id, due_at));
  std::unique_lock lock(mu_);
  key->record.enabled = false;
  key->record.deletion_due_at = due_at;
  spdlog::info("tenant {}: key {} deletion scheduled at {}", tenant_name, key->record.name, due_at);
  return Describe(*key);
}

Result<KeyInfo> KeyHierarchy::CancelKeyDeletion(std::string_view tenant_name,
                                                std::string_view key_ref) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (!key->record.deletion_due_at) {
    return Error(Code::kInvalidArgument, "key '" + key->record.name + "' is not pending deletion");
  }
  RETURN_IF_ERROR(store_->CancelKeyDeletion(key->record.id));
  std::unique_lock lock(mu_);
  key->record.deletion_due_at.reset();  // stays disabled, as in AWS KMS
  spdlog::info("tenant {}: key {} deletion cancelled", tenant_name, key->record.name);
  return Describe(*key);
}

Status KeyHierarchy::CheckRotationPeriod(std::optional<int64_t> period_seconds) const {
  if (!period_seconds) return OkStatus();  // off
  return CheckSeconds("the rotation period", *period_seconds,
                      lifecycle_.min_rotation_period_seconds, kMaxRotationPeriodSeconds);
}

Result<KeyInfo> KeyHierarchy::SetRotationPeriod(std::string_view tenant_name,
                                                std::string_view key_ref,
                                                std::optional<int64_t> period_seconds) {
  RETURN_IF_ERROR(CheckRotationPeriod(period_seconds));
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  RETURN_IF_ERROR(store_->SetRotationPeriod(key->record.id, period_seconds));
  std::unique_lock lock(mu_);
  key->record.rotation_period_seconds = period_seconds;
  spdlog::info("tenant {}: key {} rotation period {}", tenant_name, key->record.name,
               period_seconds ? std::to_string(*period_seconds) + " s" : "off");
  return Describe(*key);
}

Result<KeyInfo> KeyHierarchy::SetMinDecryptionVersion(std::string_view tenant_name,
                                                      std::string_view key_ref, uint32_t version) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  if (version < 1 || version > key->versions.size()) {
    return Error(Code::kInvalidArgument, "the minimum decryption version of key '" +
                                             key->record.name + "' must be 1 to " +
                                             std::to_string(key->versions.size()));
  }
  RETURN_IF_ERROR(store_->SetMinDecryptionVersion(key->record.id, version));
  std::unique_lock lock(mu_);
  key->record.min_decryption_version = version;
  spdlog::info("tenant {}: key {} minimum decryption version {}", tenant_name, key->record.name,
               version);
  return Describe(*key);
}

Result<std::vector<VersionInfo>> KeyHierarchy::ListVersions(std::string_view tenant_name,
                                                            std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  std::vector<VersionInfo> out;
  const uint64_t limit = lifecycle_.max_encryptions_per_version;
  for (const auto& version : key->versions) {
    out.push_back({version->number, version->created_at, std::min(version->used.load(), limit)});
  }
  return out;
}

Result<AliasInfo> KeyHierarchy::CreateAlias(std::string_view tenant_name, std::string_view alias,
                                            std::string_view key_name) {
  return PutAlias(tenant_name, alias, key_name, /*create=*/true);
}

Result<AliasInfo> KeyHierarchy::UpdateAlias(std::string_view tenant_name, std::string_view alias,
                                            std::string_view key_name) {
  return PutAlias(tenant_name, alias, key_name, /*create=*/false);
}

Result<AliasInfo> KeyHierarchy::PutAlias(std::string_view tenant_name, std::string_view alias,
                                         std::string_view key_name, bool create) {
  RETURN_IF_ERROR(ValidateAliasName(alias));
  // An alias names a key, never another alias.
  RETURN_IF_ERROR(ValidateKeyName(key_name));
  std::lock_guard write(write_mu_);
  AliasRecord record;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    auto existing = tenant->aliases.find(alias);
    if (create && existing != tenant->aliases.end()) {
      return Error(Code::kAlreadyExists, "alias '" + std::string(alias) + "' already exists");
    }
    if (!create && existing == tenant->aliases.end()) {
      return Error(Code::kNotFound, "alias '" + std::string(alias) + "' does not exist");
    }
    ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_name));
    if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
    const int64_t now = clock_.NowSeconds();
    record = create ? AliasRecord{std::string(tenant_name), std::string(alias), {}, now, now}
                    : existing->second;
    record.key_id = key->record.id;
    record.updated_at = now;
  }
  RETURN_IF_ERROR(
      create ? store_->CreateAlias(record)
             : store_->UpdateAlias(record.tenant, record.name, record.key_id, record.updated_at));
  std::unique_lock lock(mu_);
  tenants_.find(tenant_name)->second->aliases.insert_or_assign(record.name, record);
  return AliasInfo{record.name, std::string(key_name), record.key_id, record.created_at,
                   record.updated_at};
}

Status KeyHierarchy::DeleteAlias(std::string_view tenant_name, std::string_view alias) {
  RETURN_IF_ERROR(ValidateAliasName(alias));
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    if (!tenant->aliases.contains(alias)) {
      return Status(Code::kNotFound, "alias '" + std::string(alias) + "' does not exist");
    }
  }
  RETURN_IF_ERROR(store_->DeleteAlias(std::string(tenant_name), std::string(alias)));
  std::unique_lock lock(mu_);
  auto& aliases = tenants_.find(tenant_name)->second->aliases;
  aliases.erase(aliases.find(alias));
  return OkStatus();
}

Result<std::vector<AliasInfo>> KeyHierarchy::ListAliases(std::string_view tenant_name) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  std::vector<AliasInfo> out;
  for (const auto& [name, record] : tenant->aliases) {
    out.push_back({name, keys_by_id_.at(record.key_id)->record.name, record.key_id,
                   record.created_at, record.updated_at});
  }
  return out;
}

Result<pkcs11::ObjectHandle> KeyHierarchy::WrappingKeyOf(const Tenant& tenant,
                                                         const Key& key) const {
  std::optional<pkcs11::ObjectHandle> kek = key.record.kek_label.empty() ? tenant.root : key.kek;
  if (!kek) {
    return Error(Code::kNotFound, "key '" + key.record.name + "' of tenant '" + tenant.record.name +
                                      "': its key material is no longer in the token (shredded)");
  }
  return *kek;
}

Result<KeyHierarchy::VersionHandle> KeyHierarchy::HandleFor(const Tenant& tenant, const Key& key,
                                                            Version& version) const {
  if (VersionHandle unwrapped = version.unwrapped.load(); unwrapped) return unwrapped;
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle kek, WrappingKeyOf(tenant, key));
  std::lock_guard lock(unwrap_mu_);
  if (VersionHandle unwrapped = version.unwrapped.load(); unwrapped) return unwrapped;
  auto handle = token_.UnwrapAesKey(kek, version.wrapped);
  if (!handle) {
    if (handle.error().code() == Code::kNotFound) {
      return Error(Code::kNotFound, "key '" + key.record.name + "' of tenant '" +
                                        tenant.record.name +
                                        "': its key material is no longer in the token (shredded)");
    }
    return Error(handle.error());
  }
  auto unwrapped = std::make_shared<const UnwrappedVersion>(token_, *handle);
  version.unwrapped.store(unwrapped);
  return unwrapped;
}

Result<bool> KeyHierarchy::CountEncryption(const Key& key, Version& version) const {
  const uint64_t limit = lifecycle_.max_encryptions_per_version;
  const uint64_t number = version.used.fetch_add(1) + 1;
  if (number > limit) return false;
  if (number <= version.reserved.load(std::memory_order_acquire)) return true;
  std::lock_guard lock(reserve_mu_);
  const uint64_t reserved = version.reserved.load(std::memory_order_acquire);
  if (number <= reserved) return true;
  // Blocks of 1/64 of the limit (at most 65536): one keystore write per block,
  // and a crash costs at most one block of the version's budget.
  const uint64_t block = std::clamp<uint64_t>(limit / 64, 1, 65536);
  const uint64_t target = std::min(limit, std::max(number, reserved + block));
  RETURN_IF_ERROR(store_->ReserveEncryptions(key.record.id, version.number, target));
  version.reserved.store(target, std::memory_order_release);
  return true;
}

Status KeyHierarchy::RotateExhausted(const KeyId& key_id, uint32_t version) {
  std::lock_guard write(write_mu_);
  Key* key;
  {
    std::shared_lock lock(mu_);
    auto found = keys_by_id_.find(key_id);
    if (found == keys_by_id_.end()) return Status(Code::kNotFound, "the key was shredded");
    key = found->second;
    if (key->versions.size() != version) return OkStatus();  // another request rotated it
    RETURN_IF_ERROR(ServingTenant(key->record.tenant));
    RETURN_IF_ERROR(CheckKeyUsable(key->record));
  }
  spdlog::info("tenant {}: key {} version {} reached {} encryptions", key->record.tenant,
               key->record.name, version, lifecycle_.max_encryptions_per_version);
  return AddVersion(*key);
}

Result<KeyHierarchy::UsableVersion> KeyHierarchy::UsableLatest(std::string_view tenant_name,
                                                               std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  RETURN_IF_ERROR(CheckKeyUsable(key->record));
  Version& version = *key->versions.back();
  ASSIGN_OR_RETURN(VersionHandle handle, HandleFor(*tenant, *key, version));
  ASSIGN_OR_RETURN(bool counted, CountEncryption(*key, version));
  return UsableVersion{key->record.id, key->record.name, version.number, std::move(handle),
                       !counted};
}

Result<EncryptOutput> KeyHierarchy::Encrypt(std::string_view tenant, std::string_view key_ref,
                                            std::span<const uint8_t> plaintext,
                                            const EncryptionContext& context) {
  ASSIGN_OR_RETURN(UsableVersion usable, UsableLatest(tenant, key_ref));
  // Rotation makes a fresh version; more than a few rounds means requests are
  // using up whole versions between two rotations, which limits that small allow.
  for (int round = 0; usable.exhausted; ++round) {
    if (round == 8) {
      return Error(Code::kThrottled,
                   "key '" + usable.key_name + "' is rotating on its encryption limit; retry");
    }
    RETURN_IF_ERROR(RotateExhausted(usable.key_id, usable.version));
    ASSIGN_OR_RETURN(usable, UsableLatest(tenant, key_ref));
  }
  // The IV comes from OpenSSL's DRBG (NIST SP 800-90A), not the token: a
  // second token call per encryption halved throughput under concurrency.
  Iv iv;
  if (RAND_bytes(iv.data(), static_cast<int>(iv.size())) != 1) {
    return Error(Code::kInternal, "no randomness for an IV");
  }
  EncryptOutput out;
  out.ciphertext = BuildHeader(usable.key_id, usable.version, iv);
  const std::vector<uint8_t> aad =
      BuildAad(std::span(out.ciphertext).first(kBoundHeaderSize), tenant, context);
  ASSIGN_OR_RETURN(Bytes sealed, token_.EncryptGcm(usable.handle->handle(), iv, aad, plaintext));
  out.ciphertext.insert(out.ciphertext.end(), sealed.begin(), sealed.end());
  out.key_id = usable.key_id;
  out.key_name = std::move(usable.key_name);
  out.version = usable.version;
  return out;
}

Result<DecryptOutput> KeyHierarchy::Decrypt(std::string_view tenant_name,
                                            std::span<const uint8_t> ciphertext,
                                            const EncryptionContext& context,
                                            std::optional<std::string_view> expected_key_ref) {
  ASSIGN_OR_RETURN(ParsedCiphertext parsed, ParseCiphertext(ciphertext));
  DecryptOutput out;
  VersionHandle handle;  // held until the token call returns
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    auto found = keys_by_id_.find(parsed.key_id);
    // Another tenant's key id looks exactly like an unknown one: no oracle.
    if (found == keys_by_id_.end() || found->second->record.tenant != tenant_name) {
      return Error(Code::kInvalidCiphertext, "ciphertext was not made by a key of this tenant");
    }
    const Key& key = *found->second;
    if (expected_key_ref) {
      ASSIGN_OR_RETURN(const Key* expected, ResolveKey(*tenant, *expected_key_ref));
      if (expected != &key) {
        return Error(Code::kInvalidCiphertext, "ciphertext was made by another key than '" +
                                                   std::string(*expected_key_ref) + "'");
      }
    }
    if (parsed.version > key.versions.size()) {
      return Error(Code::kInvalidCiphertext, "ciphertext names a version its key does not have");
    }
    RETURN_IF_ERROR(CheckKeyUsable(key.record));
    if (parsed.version < key.record.min_decryption_version) {
      return Error(Code::kKeyDisabled, "version " + std::to_string(parsed.version) + " of key '" +
                                           key.record.name +
                                           "' is below its minimum decryption version " +
                                           std::to_string(key.record.min_decryption_version));
    }
    ASSIGN_OR_RETURN(handle, HandleFor(*tenant, key, *key.versions[parsed.version - 1]));
    out.key_id = key.record.id;
    out.key_name = key.record.name;
    out.version = parsed.version;
  }
  const std::vector<uint8_t> aad = BuildAad(parsed.bound_header, tenant_name, context);
  ASSIGN_OR_RETURN(out.plaintext,
                   token_.DecryptGcm(handle->handle(), parsed.iv, aad, parsed.encrypted_and_tag));
  return out;
}

DueWorkReport KeyHierarchy::RunDueWork() {
  DueWorkReport report;
  {
    std::lock_guard write(write_mu_);
    const int64_t now = clock_.NowSeconds();
    std::vector<Tenant*> tenants_due;
    std::vector<Key*> keys_due;
    std::vector<Key*> rotations_due;
    {
      std::shared_lock lock(mu_);
      for (const auto& [name, tenant] : tenants_) {
        if (tenant->record.deletion_due_at && *tenant->record.deletion_due_at <= now) {
          tenants_due.push_back(tenant.get());
          continue;
        }
        for (const auto& [key_name, key] : tenant->keys) {
          const KeyRecord& record = key->record;
          if (record.deletion_due_at && *record.deletion_due_at <= now) {
            keys_due.push_back(key.get());
          } else if (!tenant->record.deletion_due_at &&  // a pending tenant does not rotate
                     record.enabled && record.rotation_period_seconds &&
                     key->versions.back()->created_at + *record.rotation_period_seconds <= now &&
                     WrappingKeyOf(*tenant, *key).has_value()) {  // not when shredded
            rotations_due.push_back(key.get());
          }
        }
      }
    }
    for (Tenant* tenant : tenants_due) {
      if (Status status = ShredTenant(*tenant, now); status.ok()) {
        ++report.tenants_shredded;
      } else {
        spdlog::error("tenant shredding failed (will retry): {}", status.ToString());
      }
    }
    for (Key* key : keys_due) {
      if (Status status = ShredKey(*key, now); status.ok()) {
        ++report.keys_shredded;
      } else {
        spdlog::error("key shredding failed (will retry): {}", status.ToString());
      }
    }
    for (Key* key : rotations_due) {
      if (Status status = AddVersion(*key); status.ok()) {
        ++report.keys_rotated;
      } else {
        spdlog::error("tenant {}: automatic rotation of key {} failed (will retry): {}",
                      key->record.tenant, key->record.name, status.ToString());
      }
    }
  }
  report.token_objects_destroyed = DestroyQueuedTokenObjects();
  return report;
}

Status KeyHierarchy::ShredKey(Key& key, int64_t now) {
  std::vector<std::string> labels;
  if (!key.record.kek_label.empty()) {
    labels.push_back(key.record.kek_label);
  } else {
    spdlog::warn(
        "tenant {}: key {} predates per-key KEKs; it is forgotten, and its versions go "
        "with the tenant's root",
        key.record.tenant, key.record.name);
  }
  RETURN_IF_ERROR(store_->ShredKey(key.record.id, labels, now));
  QueueTokenObjects(labels);
  const std::string tenant_name = key.record.tenant;
  const std::string key_name = key.record.name;
  const KeyId key_id = key.record.id;
  std::unique_lock lock(mu_);
  Forget(key);
  Tenant& tenant = *tenants_.find(tenant_name)->second;
  std::erase_if(tenant.aliases, [&](const auto& entry) { return entry.second.key_id == key_id; });
  keys_by_id_.erase(key_id);
  tenant.keys.erase(tenant.keys.find(key_name));  // frees `key`
  spdlog::info("tenant {}: key {} ({}) shredded", tenant_name, key_name, KeyIdToHex(key_id));
  return OkStatus();
}

Status KeyHierarchy::ShredTenant(Tenant& tenant, int64_t now) {
  std::vector<std::string> labels;
  if (!tenant.record.root_label.empty()) labels.push_back(tenant.record.root_label);
  for (const auto& [name, key] : tenant.keys) {
    if (!key->record.kek_label.empty()) labels.push_back(key->record.kek_label);
  }
  const std::string tenant_name = tenant.record.name;
  RETURN_IF_ERROR(store_->ShredTenant(tenant_name, labels, now));
  QueueTokenObjects(labels);
  std::unique_lock lock(mu_);
  for (const auto& [name, key] : tenant.keys) {
    Forget(*key);
    keys_by_id_.erase(key->record.id);
  }
  tenants_.erase(tenants_.find(tenant_name));  // frees `tenant`
  spdlog::info("tenant {} shredded", tenant_name);
  return OkStatus();
}

void KeyHierarchy::QueueTokenObjects(const std::vector<std::string>& labels) {
  std::lock_guard lock(destroy_mu_);
  token_objects_to_destroy_.insert(labels.begin(), labels.end());
}

size_t KeyHierarchy::DestroyQueuedTokenObjects() {
  std::lock_guard lock(destroy_mu_);
  size_t destroyed = 0;
  for (auto it = token_objects_to_destroy_.begin(); it != token_objects_to_destroy_.end();) {
    const std::string& label = *it;
    auto destroy = [&]() -> Status {
      ASSIGN_OR_RETURN(std::vector<pkcs11::ObjectHandle> handles,
                       token_.FindTokenSecretKeysByLabel(label));
      for (pkcs11::ObjectHandle handle : handles) {
        if (Status status = token_.DestroyObject(handle);
            !status.ok() && status.code() != Code::kNotFound) {
          return status;
        }
        ++destroyed;
      }
      // Dequeued only once the token finds no object of that label.
      ASSIGN_OR_RETURN(handles, token_.FindTokenSecretKeysByLabel(label));
      if (!handles.empty()) {
        return Status(Code::kInternal, "still in the token after C_DestroyObject");
      }
      return store_->TokenObjectDestroyed(label);
    };
    if (Status status = destroy(); !status.ok()) {
      spdlog::error("cannot destroy token object {} (will retry): {}", label, status.ToString());
      ++it;
      continue;
    }
    spdlog::info("token object {} destroyed", label);
    it = token_objects_to_destroy_.erase(it);
  }
  return destroyed;
}

void KeyHierarchy::Forget(const Key& key) {
  // Each session object dies when the last request using it finishes.
  for (const auto& version : key.versions) version->unwrapped.store(nullptr);
}

size_t KeyHierarchy::TenantCount() const {
  std::shared_lock lock(mu_);
  return tenants_.size();
}

size_t KeyHierarchy::KeyCount() const {
  std::shared_lock lock(mu_);
  return keys_by_id_.size();
}

}  // namespace kmsd
