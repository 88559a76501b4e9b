// Aliases: alias/<name> names one key of the same tenant, never another alias.
#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "protocol/names.h"

namespace kmsd {

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
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
    auto existing = tenant->aliases.find(alias);
    if (create && existing != tenant->aliases.end()) {
      return Error(Code::kAlreadyExists, "alias '" + std::string(alias) + "' already exists");
    }
    if (!create && existing == tenant->aliases.end()) {
      return Error(Code::kNotFound, "alias '" + std::string(alias) + "' does not exist");
    }
    ASSIGN_OR_RETURN(const Key* key, catalog_->ResolveKey(*tenant, key_name));
    if (key->record.deletion_due_at)
      return Error(keystore_internal::KeyPendingDeletion(key->record));
    const int64_t now = clock_.NowSeconds();
    record = create ? AliasRecord{std::string(tenant_name), std::string(alias), {}, now, now}
                    : existing->second;
    record.key_id = key->record.id;
    record.updated_at = now;
  }
  RETURN_IF_ERROR(
      create ? store_->CreateAlias(record)
             : store_->UpdateAlias(record.tenant, record.name, record.key_id, record.updated_at));
  auto lock = catalog_->WriteLock();
  catalog_->Mutable(**catalog_->FindTenant(tenant_name))
      .aliases.insert_or_assign(record.name, record);
  return AliasInfo{record.name, std::string(key_name), record.key_id, record.created_at,
                   record.updated_at};
}

Status KeyHierarchy::DeleteAlias(std::string_view tenant_name, std::string_view alias) {
  RETURN_IF_ERROR(ValidateAliasName(alias));
  std::lock_guard write(write_mu_);
  {
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
    if (!tenant->aliases.contains(alias)) {
      return Status(Code::kNotFound, "alias '" + std::string(alias) + "' does not exist");
    }
  }
  RETURN_IF_ERROR(store_->DeleteAlias(std::string(tenant_name), std::string(alias)));
  auto lock = catalog_->WriteLock();
  auto& aliases = catalog_->Mutable(**catalog_->FindTenant(tenant_name)).aliases;
  aliases.erase(aliases.find(alias));
  return OkStatus();
}

Result<std::vector<AliasInfo>> KeyHierarchy::ListAliases(std::string_view tenant_name) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  std::vector<AliasInfo> out;
  for (const auto& [name, record] : tenant->aliases) {
    out.push_back({name, catalog_->KeyById(record.key_id)->record.name, record.key_id,
                   record.created_at, record.updated_at});
  }
  return out;
}

}  // namespace kmsd
