// Keys: creation (a KEK of its own in the token and a first version),
// description, rotation and the key lifecycle (enable, disable, pending
// deletion, rotation period, minimum decryption version).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "protocol/names.h"

namespace kmsd {

using keystore_internal::KeyPendingDeletion;

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

std::unique_ptr<KeyHierarchy::Key> KeyHierarchy::CatalogKey(NewKeyParts&& parts) {
  auto key = std::make_unique<Key>();
  key->record = std::move(parts.record);
  key->kek = parts.kek;
  key->versions.push_back(std::make_unique<Version>(std::move(parts.first_version)));
  return key;
}

Result<KeyInfo> KeyHierarchy::CreateKey(std::string_view tenant_name, std::string_view name,
                                        std::string_view description,
                                        std::optional<uint64_t> max_keys) {
  RETURN_IF_ERROR(ValidateKeyName(name));
  if (description.size() > 1024) {
    return Error(Code::kInvalidArgument, "key description is longer than 1024 bytes");
  }
  std::lock_guard write(write_mu_);
  {
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
    if (tenant->keys.contains(name)) {
      return Error(Code::kAlreadyExists, "key '" + std::string(name) +
                                             "' already exists in tenant '" +
                                             std::string(tenant_name) + "'");
    }
    if (max_keys && tenant->keys.size() >= *max_keys) {
      return Error(Code::kQuotaExceeded, "tenant '" + std::string(tenant_name) + "' holds " +
                                             std::to_string(tenant->keys.size()) +
                                             " keys: its policy's max_keys is " +
                                             std::to_string(*max_keys));
    }
  }
  ASSIGN_OR_RETURN(NewKeyParts parts, MakeKey(tenant_name, name, description, clock_.NowSeconds()));
  if (Status stored = store_->CreateKey(parts.record, parts.first_version); !stored.ok()) {
    DestroyNewKeks({parts.kek}, tenant_name);
    return Error(std::move(stored));
  }
  auto lock = catalog_->WriteLock();
  const Key& key = catalog_->AddKey(tenant_name, CatalogKey(std::move(parts)));
  spdlog::info("tenant {}: key {} ({}) created", tenant_name, name, KeyIdToHex(key.record.id));
  return catalog_->Describe(key);
}

Result<KeyInfo> KeyHierarchy::DescribeKey(std::string_view tenant_name,
                                          std::string_view key_ref) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, catalog_->ResolveKey(*tenant, key_ref));
  return catalog_->Describe(*key);
}

Result<KeyInfo> KeyHierarchy::DescribeKeyById(std::string_view tenant_name, const KeyId& id) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  const Key* key = catalog_->KeyById(id);
  if (key == nullptr || key->record.tenant != tenant->record.name) {
    return Error(Code::kNotFound,
                 "key " + KeyIdToHex(id) + " not found in tenant '" + tenant->record.name + "'");
  }
  return catalog_->Describe(*key);
}

Result<std::vector<KeyInfo>> KeyHierarchy::ListKeys(std::string_view tenant_name) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  std::vector<KeyInfo> out;
  for (const auto& [name, key] : tenant->keys) out.push_back(catalog_->Describe(*key));
  return out;
}

Result<std::vector<VersionInfo>> KeyHierarchy::ListVersions(std::string_view tenant_name,
                                                            std::string_view key_ref) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, catalog_->ResolveKey(*tenant, key_ref));
  std::vector<VersionInfo> out;
  const uint64_t limit = lifecycle_.max_encryptions_per_version;
  for (const auto& version : key->versions) {
    out.push_back({version->number, version->created_at, std::min(version->budget->used(), limit)});
  }
  return out;
}

Result<KeyInfo> KeyHierarchy::RotateKey(std::string_view tenant_name, std::string_view key_ref) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  RETURN_IF_ERROR(AddVersion(*key));
  auto lock = catalog_->ReadLock();
  return catalog_->Describe(*key);
}

Status KeyHierarchy::AddVersion(const Key& key) {
  pkcs11::ObjectHandle kek;
  {
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->FindTenant(key.record.tenant));
    ASSIGN_OR_RETURN(kek, keystore_internal::WrappingKeyOf(*tenant, key));
  }
  const uint32_t next = static_cast<uint32_t>(key.versions.size()) + 1;
  ASSIGN_OR_RETURN(KeyVersionRecord record,
                   NewVersion(key.record.id, next, kek, clock_.NowSeconds()));
  RETURN_IF_ERROR(store_->AddKeyVersion(record));
  auto lock = catalog_->WriteLock();
  catalog_->Mutable(key).versions.push_back(std::make_unique<Version>(std::move(record)));
  spdlog::info("tenant {}: key {} rotated to version {}", key.record.tenant, key.record.name, next);
  return OkStatus();
}

Result<KeyHierarchy::Key*> KeyHierarchy::KeyToChange(std::string_view tenant_name,
                                                     std::string_view key_ref) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  ASSIGN_OR_RETURN(const Key* key, catalog_->ResolveKey(*tenant, key_ref));
  // Changes are serialized by write_mu_ (held by the caller), so the key
  // cannot go away or change under it.
  return &catalog_->Mutable(*key);
}

Result<KeyInfo> KeyHierarchy::SetKeyEnabled(std::string_view tenant_name, std::string_view key_ref,
                                            bool enabled) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  if (key->record.enabled != enabled) {
    RETURN_IF_ERROR(store_->SetKeyEnabled(key->record.id, enabled));
    auto lock = catalog_->WriteLock();
    key->record.enabled = enabled;
    spdlog::info("tenant {}: key {} {}", tenant_name, key->record.name,
                 enabled ? "enabled" : "disabled");
  }
  auto lock = catalog_->ReadLock();
  return catalog_->Describe(*key);
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
  auto lock = catalog_->WriteLock();
  key->record.enabled = false;
  key->record.deletion_due_at = due_at;
  spdlog::info("tenant {}: key {} deletion scheduled at {}", tenant_name, key->record.name, due_at);
  return catalog_->Describe(*key);
}

Result<KeyInfo> KeyHierarchy::CancelKeyDeletion(std::string_view tenant_name,
                                                std::string_view key_ref) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (!key->record.deletion_due_at) {
    return Error(Code::kInvalidArgument, "key '" + key->record.name + "' is not pending deletion");
  }
  RETURN_IF_ERROR(store_->CancelKeyDeletion(key->record.id));
  auto lock = catalog_->WriteLock();
  key->record.deletion_due_at.reset();  // stays disabled, as in AWS KMS
  spdlog::info("tenant {}: key {} deletion cancelled", tenant_name, key->record.name);
  return catalog_->Describe(*key);
}

Result<KeyInfo> KeyHierarchy::SetRotationPeriod(std::string_view tenant_name,
                                                std::string_view key_ref,
                                                std::optional<int64_t> period_seconds) {
  RETURN_IF_ERROR(CheckRotationPeriod(period_seconds));
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Key * key, KeyToChange(tenant_name, key_ref));
  if (key->record.deletion_due_at) return Error(KeyPendingDeletion(key->record));
  RETURN_IF_ERROR(store_->SetRotationPeriod(key->record.id, period_seconds));
  auto lock = catalog_->WriteLock();
  key->record.rotation_period_seconds = period_seconds;
  spdlog::info("tenant {}: key {} rotation period {}", tenant_name, key->record.name,
               period_seconds ? std::to_string(*period_seconds) + " s" : "off");
  return catalog_->Describe(*key);
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
  auto lock = catalog_->WriteLock();
  key->record.min_decryption_version = version;
  spdlog::info("tenant {}: key {} minimum decryption version {}", tenant_name, key->record.name,
               version);
  return catalog_->Describe(*key);
}

}  // namespace kmsd
