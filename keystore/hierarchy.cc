#include "keystore/hierarchy.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/names.h"

namespace kmsd {

struct KeyHierarchy::Version {
  uint32_t number = 0;
  Bytes wrapped;
  int64_t created_at = 0;
  // 0 until first use; then the session object holding the unwrapped key.
  mutable std::atomic<pkcs11::ObjectHandle> handle{0};
};

struct KeyHierarchy::Key {
  KeyRecord record;
  std::vector<std::unique_ptr<Version>> versions;  // versions[i].number == i + 1
};

struct KeyHierarchy::Tenant {
  TenantRecord record;
  std::optional<pkcs11::ObjectHandle> root;  // nullopt: the token no longer has it
  std::map<std::string, std::unique_ptr<Key>, std::less<>> keys;  // by name
  std::map<std::string, AliasRecord, std::less<>> aliases;        // by alias name
};

namespace {

Result<std::string> RandomHex(pkcs11::Token& token, size_t bytes) {
  Bytes raw(bytes);
  RETURN_IF_ERROR(token.GenerateRandom(raw));
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : raw) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
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

namespace {}  // namespace

KeyHierarchy::KeyHierarchy(pkcs11::Token& token, std::unique_ptr<KeyStore> store,
                           const Clock& clock, LifecycleOptions lifecycle)
    : token_(token), store_(std::move(store)), clock_(clock), lifecycle_(lifecycle) {}

KeyHierarchy::~KeyHierarchy() {
  // Session objects die with the token's holder session; destroying them here
  // keeps a long-lived Token (tests) from accumulating them.
  for (const auto& [id, key] : keys_by_id_) {
    for (const auto& version : key->versions) {
      if (pkcs11::ObjectHandle h = version->handle.load(); h != 0) (void)token_.DestroyObject(h);
    }
  }
}

Result<std::unique_ptr<KeyHierarchy>> KeyHierarchy::Open(pkcs11::Token& token,
                                                         std::unique_ptr<KeyStore> store,
                                                         const Clock& clock,
                                                         LifecycleOptions lifecycle) {
  if (lifecycle.min_pending_window_seconds < 1 ||
      lifecycle.min_pending_window_seconds > kDefaultMinPendingWindowSeconds) {
    return Error(Code::kInvalidArgument, "min_pending_window_seconds must be 1 to 604800");
  }
  std::unique_ptr<KeyHierarchy> hierarchy(
      new KeyHierarchy(token, std::move(store), clock, lifecycle));
  RETURN_IF_ERROR(hierarchy->Load());
  return hierarchy;
}

Status KeyHierarchy::Load() {
  ASSIGN_OR_RETURN(std::vector<pkcs11::TokenObject> objects, token_.ListTokenSecretKeys());
  std::map<std::string, pkcs11::ObjectHandle, std::less<>> by_label;
  for (auto& object : objects) by_label.emplace(object.label, object.handle);

  if (!by_label.contains(kPlatformMasterKeyLabel)) {
    ASSIGN_OR_RETURN(auto handle, token_.CreateTokenAesKey(kPlatformMasterKeyLabel, true));
    by_label.emplace(std::string(kPlatformMasterKeyLabel), handle);
    spdlog::info("created {} in the token", kPlatformMasterKeyLabel);
  }
  if (!by_label.contains(kAuditLogKeyLabel)) {
    ASSIGN_OR_RETURN(auto handle, token_.CreateTokenHmacKey(kAuditLogKeyLabel));
    by_label.emplace(std::string(kAuditLogKeyLabel), handle);
    spdlog::info("created {} in the token", kAuditLogKeyLabel);
  }

  ASSIGN_OR_RETURN(KeyStoreSnapshot snapshot, store_->LoadAll());
  std::unique_lock lock(mu_);
  for (auto& record : snapshot.tenants) {
    auto tenant = std::make_unique<Tenant>();
    if (auto it = by_label.find(record.root_label); it != by_label.end()) {
      tenant->root = it->second;
    } else {
      spdlog::error("tenant {}: root key {} is not in the token; its keys cannot be used",
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
    keys_by_id_[key->record.id] = key.get();
    tenant->second->keys.emplace(key->record.name, std::move(key));
  }
  for (auto& record : snapshot.versions) {
    auto key = keys_by_id_.find(record.key_id);
    if (key == keys_by_id_.end() || record.version != key->second->versions.size() + 1) {
      return Status(Code::kInternal, "keystore: key versions are not contiguous");
    }
    auto version = std::make_unique<Version>();
    version->number = record.version;
    version->wrapped = std::move(record.wrapped);
    version->created_at = record.created_at;
    key->second->versions.push_back(std::move(version));
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
  return OkStatus();
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
  return record;
}

Result<KeyVersionRecord> KeyHierarchy::NewVersion(const KeyId& key_id, uint32_t version,
                                                  pkcs11::ObjectHandle root, int64_t now) {
  KeyVersionRecord record;
  record.key_id = key_id;
  record.version = version;
  record.created_at = now;
  ASSIGN_OR_RETURN(record.wrapped, token_.GenerateWrappedAesKey(root));
  return record;
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
  ASSIGN_OR_RETURN(std::string root_suffix, RandomHex(token_, 8));
  TenantRecord tenant{std::string(name), "tenants/" + std::string(name) + "/root/" + root_suffix,
                      now, std::nullopt};
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle root, token_.CreateTokenAesKey(tenant.root_label, true));

  // Everything below either lands in one keystore transaction or the root is
  // destroyed again: a failure half way leaves nothing behind.
  auto provision = [&]() -> Status {
    std::vector<KeyRecord> keys;
    std::vector<KeyVersionRecord> versions;
    std::vector<AliasRecord> aliases;
    for (const auto& default_key : kDefaultTenantKeys) {
      ASSIGN_OR_RETURN(KeyRecord key, NewKeyRecord(name, default_key.name, "", now));
      ASSIGN_OR_RETURN(KeyVersionRecord version, NewVersion(key.id, 1, root, now));
      aliases.push_back({std::string(name), std::string(default_key.alias), key.id, now, now});
      keys.push_back(std::move(key));
      versions.push_back(std::move(version));
    }
    RETURN_IF_ERROR(store_->CreateTenant(tenant, keys, versions, aliases));

    auto entry = std::make_unique<Tenant>();
    entry->record = tenant;
    entry->root = root;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto key = std::make_unique<Key>();
      key->record = std::move(keys[i]);
      auto version = std::make_unique<Version>();
      version->number = 1;
      version->wrapped = std::move(versions[i].wrapped);
      version->created_at = now;
      key->versions.push_back(std::move(version));
      entry->aliases.emplace(aliases[i].name, aliases[i]);
      std::string key_name = key->record.name;
      entry->keys.emplace(std::move(key_name), std::move(key));
    }
    std::unique_lock lock(mu_);
    for (const auto& [key_name, key] : entry->keys) keys_by_id_[key->record.id] = key.get();
    tenants_.emplace(tenant.name, std::move(entry));
    return OkStatus();
  };
  if (Status status = provision(); !status.ok()) {
    if (!token_.DestroyObject(root).ok()) {
      spdlog::error("tenant {}: could not destroy root {} after a failed create", name,
                    tenant.root_label);
    }
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
  Result<const Tenant*> tenant = ServingTenant(name);
  if (!tenant) return tenant.error();
  return OkStatus();
}

Status KeyHierarchy::CheckWindow(int64_t window_seconds) const {
  if (window_seconds < lifecycle_.min_pending_window_seconds ||
      window_seconds > kMaxPendingWindowSeconds) {
    return Status(Code::kInvalidArgument,
                  "the pending window must be " +
                      std::to_string(lifecycle_.min_pending_window_seconds) + " to " +
                      std::to_string(kMaxPendingWindowSeconds) + " seconds");
  }
  return OkStatus();
}

Result<TenantInfo> KeyHierarchy::ScheduleTenantDeletion(std::string_view name,
                                                        int64_t window_seconds) {
  RETURN_IF_ERROR(CheckWindow(window_seconds));
  std::lock_guard write(write_mu_);
  Tenant* tenant;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* found, ServingTenant(name));
    // Changes are serialized by write_mu_, and tenants are never removed.
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
               {}};
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
  pkcs11::ObjectHandle root;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    if (tenant->keys.contains(name)) {
      return Error(Code::kAlreadyExists, "key '" + std::string(name) +
                                             "' already exists in tenant '" +
                                             std::string(tenant_name) + "'");
    }
    if (!tenant->root) return Error(Code::kNotFound, "tenant's root key is not in the token");
    root = *tenant->root;
  }
  const int64_t now = clock_.NowSeconds();
  ASSIGN_OR_RETURN(KeyRecord record, NewKeyRecord(tenant_name, name, description, now));
  ASSIGN_OR_RETURN(KeyVersionRecord first, NewVersion(record.id, 1, root, now));
  RETURN_IF_ERROR(store_->CreateKey(record, first));

  auto key = std::make_unique<Key>();
  key->record = std::move(record);
  auto version = std::make_unique<Version>();
  version->number = 1;
  version->wrapped = std::move(first.wrapped);
  version->created_at = now;
  key->versions.push_back(std::move(version));
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
  Key* key;
  pkcs11::ObjectHandle root;
  {
    std::shared_lock lock(mu_);
    ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
    ASSIGN_OR_RETURN(const Key* found, ResolveKey(*tenant, key_ref));
    if (found->record.deletion_due_at) return Error(KeyPendingDeletion(found->record));
    if (!tenant->root) return Error(Code::kNotFound, "tenant's root key is not in the token");
    // Changes are serialized by write_mu_, so the key cannot go away here.
    key = const_cast<Key*>(found);
    root = *tenant->root;
  }
  const uint32_t next = static_cast<uint32_t>(key->versions.size()) + 1;
  ASSIGN_OR_RETURN(KeyVersionRecord record,
                   NewVersion(key->record.id, next, root, clock_.NowSeconds()));
  RETURN_IF_ERROR(store_->AddKeyVersion(record));
  auto version = std::make_unique<Version>();
  version->number = next;
  version->wrapped = std::move(record.wrapped);
  version->created_at = record.created_at;
  std::unique_lock lock(mu_);
  key->versions.push_back(std::move(version));
  spdlog::info("tenant {}: key {} rotated to version {}", tenant_name, key->record.name, next);
  return Describe(*key);
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

Result<std::vector<VersionInfo>> KeyHierarchy::ListVersions(std::string_view tenant_name,
                                                            std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  std::vector<VersionInfo> out;
  for (const auto& version : key->versions) out.push_back({version->number, version->created_at});
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

Result<pkcs11::ObjectHandle> KeyHierarchy::HandleFor(const Tenant& tenant, Version& version) const {
  if (pkcs11::ObjectHandle h = version.handle.load(std::memory_order_acquire); h != 0) return h;
  if (!tenant.root) {
    return Error(Code::kNotFound, "tenant '" + tenant.record.name +
                                      "': root key is no longer in the token (shredded)");
  }
  std::lock_guard lock(unwrap_mu_);
  if (pkcs11::ObjectHandle h = version.handle.load(std::memory_order_acquire); h != 0) return h;
  auto unwrapped = token_.UnwrapAesKey(*tenant.root, version.wrapped);
  if (!unwrapped) {
    if (unwrapped.error().code() == Code::kNotFound) {
      return Error(Code::kNotFound, "tenant '" + tenant.record.name +
                                        "': root key is no longer in the token (shredded)");
    }
    return Error(unwrapped.error());
  }
  version.handle.store(*unwrapped, std::memory_order_release);
  return *unwrapped;
}

Result<KeyHierarchy::UsableVersion> KeyHierarchy::UsableLatest(std::string_view tenant_name,
                                                               std::string_view key_ref) const {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(const Tenant* tenant, ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, ResolveKey(*tenant, key_ref));
  RETURN_IF_ERROR(CheckKeyUsable(key->record));
  Version& version = *key->versions.back();
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle handle, HandleFor(*tenant, version));
  return UsableVersion{key->record.id, key->record.name, version.number, handle};
}

Result<EncryptOutput> KeyHierarchy::Encrypt(std::string_view tenant, std::string_view key_ref,
                                            std::span<const uint8_t> plaintext,
                                            const EncryptionContext& context) {
  ASSIGN_OR_RETURN(UsableVersion usable, UsableLatest(tenant, key_ref));
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
  ASSIGN_OR_RETURN(Bytes sealed, token_.EncryptGcm(usable.handle, iv, aad, plaintext));
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
  pkcs11::ObjectHandle handle;
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
    ASSIGN_OR_RETURN(handle, HandleFor(*tenant, *key.versions[parsed.version - 1]));
    out.key_id = key.record.id;
    out.key_name = key.record.name;
    out.version = parsed.version;
  }
  const std::vector<uint8_t> aad = BuildAad(parsed.bound_header, tenant_name, context);
  ASSIGN_OR_RETURN(out.plaintext,
                   token_.DecryptGcm(handle, parsed.iv, aad, parsed.encrypted_and_tag));
  return out;
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
