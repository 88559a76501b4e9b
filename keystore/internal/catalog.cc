#include "keystore/internal/catalog.h"

#include <spdlog/spdlog.h>

#include "protocol/names.h"

namespace kmsd {

std::string KekLabel(std::string_view tenant, const KeyId& id) {
  return "tenants/" + std::string(tenant) + "/keys/" + KeyIdToHex(id);
}

namespace keystore_internal {
namespace {

Status TenantNotFound(std::string_view tenant) {
  return Status(Code::kNotFound, "tenant '" + std::string(tenant) + "' does not exist");
}

// The catalog's hold on the key's session objects goes: each object dies when
// the last request using it finishes.
void DropSessionObjects(const Key& key) {
  for (const auto& version : key.versions) version->unwrapped.store(nullptr);
}

}  // namespace

Version::Version(KeyVersionRecord&& record)
    : number(record.version),
      wrapped(std::move(record.wrapped)),
      created_at(record.created_at),
      budget(std::make_shared<NonceBudget>(record.reserved_encryptions)) {}

Result<pkcs11::ObjectHandle> WrappingKeyOf(const Tenant& tenant, const Key& key) {
  std::optional<pkcs11::ObjectHandle> kek = key.record.kek_label.empty() ? tenant.root : key.kek;
  if (!kek) {
    return Error(Code::kNotFound, "key '" + key.record.name + "' of tenant '" + tenant.record.name +
                                      "': its key material is no longer in the token (shredded)");
  }
  return *kek;
}

Status KeyPendingDeletion(const KeyRecord& key) {
  return Status(Code::kKeyPendingDeletion, "key '" + key.name + "' is pending deletion (due at " +
                                               std::to_string(*key.deletion_due_at) + ")");
}

Status CheckKeyUsable(const KeyRecord& key) {
  if (key.deletion_due_at) return KeyPendingDeletion(key);
  if (!key.enabled) return Status(Code::kKeyDisabled, "key '" + key.name + "' is disabled");
  return OkStatus();
}

Status Catalog::Load(KeyStoreSnapshot&& snapshot, const LabelMap& by_label) {
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
  RETURN_IF_ERROR(LoadKeys(std::move(snapshot.keys), by_label));
  for (auto& record : snapshot.versions) {
    auto key = keys_by_id_.find(record.key_id);
    if (key == keys_by_id_.end() || record.version != key->second->versions.size() + 1) {
      return Status(Code::kInternal, "keystore: key versions are not contiguous");
    }
    Mutable(*key->second).versions.push_back(std::make_unique<Version>(std::move(record)));
  }
  for (auto& record : snapshot.aliases) {
    auto tenant = tenants_.find(record.tenant);
    if (tenant == tenants_.end()) {
      return Status(Code::kInternal, "keystore: alias of unknown tenant");
    }
    tenant->second->aliases.emplace(record.name, std::move(record));
  }
  for (const auto& [id, key] : keys_by_id_) {
    if (key->versions.empty()) return Status(Code::kInternal, "keystore: key without versions");
  }
  spdlog::info("keystore loaded: {} tenants, {} keys", tenants_.size(), keys_by_id_.size());
  return OkStatus();
}

Status Catalog::LoadKeys(std::vector<KeyRecord>&& keys, const LabelMap& by_label) {
  for (auto& record : keys) {
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
  return OkStatus();
}

Result<const Tenant*> Catalog::FindTenant(std::string_view tenant) const {
  RETURN_IF_ERROR(ValidateTenantName(tenant));
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return Error(TenantNotFound(tenant));
  return it->second.get();
}

Result<const Tenant*> Catalog::ServingTenant(std::string_view name) const {
  ASSIGN_OR_RETURN(const Tenant* tenant, FindTenant(name));
  if (tenant->record.deletion_due_at) {
    return Error(Code::kKeyPendingDeletion,
                 "tenant '" + tenant->record.name + "' is pending deletion (due at " +
                     std::to_string(*tenant->record.deletion_due_at) + ")");
  }
  return tenant;
}

Result<const Key*> Catalog::ResolveKey(const Tenant& tenant, std::string_view key_ref) const {
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

const Key* Catalog::KeyById(const KeyId& id) const {
  auto found = keys_by_id_.find(id);
  return found == keys_by_id_.end() ? nullptr : found->second;
}

TenantInfo Catalog::DescribeTenant(const Tenant& tenant) const {
  return TenantInfo{tenant.record.name, tenant.record.created_at, tenant.keys.size(),
                    tenant.aliases.size(), tenant.record.deletion_due_at};
}

std::optional<int64_t> EffectiveRotationPeriod(const Tenant& tenant, const Key& key) {
  const std::optional<int64_t>& own = key.record.rotation_period_seconds;
  const std::optional<int64_t>& ceiling = tenant.rotation_ceiling_seconds;
  if (own && ceiling) return std::min(*own, *ceiling);
  return own ? own : ceiling;
}

KeyInfo Catalog::Describe(const Key& key) const {
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
  const Tenant& tenant = *tenants_.find(key.record.tenant)->second;
  if (auto period = EffectiveRotationPeriod(tenant, key)) {
    info.next_rotation_at = key.versions.back()->created_at + *period;
  }
  for (const auto& [alias, record] : tenant.aliases) {
    if (record.key_id == key.record.id) info.aliases.push_back(alias);
  }
  return info;
}

void Catalog::AddTenant(std::unique_ptr<Tenant> tenant) {
  for (const auto& [name, key] : tenant->keys) keys_by_id_[key->record.id] = key.get();
  std::string name = tenant->record.name;
  tenants_.emplace(std::move(name), std::move(tenant));
}

Key& Catalog::AddKey(std::string_view tenant, std::unique_ptr<Key> key) {
  Key& added = *key;
  keys_by_id_[added.record.id] = &added;
  tenants_.find(tenant)->second->keys.emplace(added.record.name, std::move(key));
  return added;
}

void Catalog::ForgetKey(const Key& key) {
  DropSessionObjects(key);
  const KeyId key_id = key.record.id;
  Tenant& tenant = *tenants_.find(key.record.tenant)->second;
  std::erase_if(tenant.aliases, [&](const auto& entry) { return entry.second.key_id == key_id; });
  keys_by_id_.erase(key_id);
  tenant.keys.erase(tenant.keys.find(key.record.name));  // frees `key`
}

void Catalog::ForgetTenant(const Tenant& tenant) {
  for (const auto& [name, key] : tenant.keys) {
    DropSessionObjects(*key);
    keys_by_id_.erase(key->record.id);
  }
  tenants_.erase(tenants_.find(tenant.record.name));  // frees `tenant`
}

}  // namespace keystore_internal
}  // namespace kmsd
