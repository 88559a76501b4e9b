// Tenants: creation (with their default keys and aliases, in one unit of
// work), description and the pending-deletion lifecycle.
#include <spdlog/spdlog.h>

#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "protocol/names.h"

namespace kmsd {

Status KeyHierarchy::ProvisionTenant(const TenantRecord& tenant,
                                     std::vector<pkcs11::ObjectHandle>& keks) {
  UnitOfWork unit;
  unit.Add(store_change::CreateTenant{tenant});
  auto entry = std::make_unique<Tenant>();
  entry->record = tenant;
  for (const auto& default_key : kDefaultTenantKeys) {
    ASSIGN_OR_RETURN(NewKeyParts parts,
                     MakeKey(tenant.name, default_key.name, "", tenant.created_at));
    keks.push_back(parts.kek);
    AliasRecord alias{tenant.name, std::string(default_key.alias), parts.record.id,
                      tenant.created_at, tenant.created_at};
    unit.Add(store_change::CreateKey{parts.record, parts.first_version});
    unit.Add(store_change::CreateAlias{alias});
    entry->aliases.emplace(alias.name, alias);
    std::string key_name = parts.record.name;
    entry->keys.emplace(std::move(key_name), CatalogKey(std::move(parts)));
  }
  RETURN_IF_ERROR(store_->Apply(unit));
  auto lock = catalog_->WriteLock();
  catalog_->AddTenant(std::move(entry));
  return OkStatus();
}

Result<TenantInfo> KeyHierarchy::CreateTenant(std::string_view name) {
  RETURN_IF_ERROR(ValidateTenantName(name));
  std::lock_guard write(write_mu_);
  {
    auto lock = catalog_->ReadLock();
    if (catalog_->tenants().contains(name)) {
      return Error(Code::kAlreadyExists, "tenant '" + std::string(name) + "' already exists");
    }
  }
  const TenantRecord tenant{std::string(name), "", clock_.NowSeconds(), std::nullopt};
  // Everything either lands in one keystore transaction or the new KEKs are
  // destroyed again: a failure half way leaves nothing behind.
  std::vector<pkcs11::ObjectHandle> keks;
  if (Status status = ProvisionTenant(tenant, keks); !status.ok()) {
    DestroyNewKeks(keks, name);
    return Error(std::move(status));
  }
  spdlog::info("tenant {} created", name);
  return DescribeTenant(name);
}

Result<TenantInfo> KeyHierarchy::DescribeTenant(std::string_view name) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->FindTenant(name));
  return catalog_->DescribeTenant(*tenant);
}

std::vector<TenantInfo> KeyHierarchy::ListTenants() const {
  auto lock = catalog_->ReadLock();
  std::vector<TenantInfo> out;
  for (const auto& [name, tenant] : catalog_->tenants()) {
    out.push_back(catalog_->DescribeTenant(*tenant));
  }
  return out;
}

Status KeyHierarchy::CheckNotPendingDeletion(std::string_view name) const {
  auto lock = catalog_->ReadLock();
  if (!catalog_->tenants().contains(name)) return OkStatus();
  return StatusOf(catalog_->ServingTenant(name));
}

Result<KeyHierarchy::Tenant*> KeyHierarchy::TenantToChange(std::string_view name,
                                                           bool serving) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant,
                   serving ? catalog_->ServingTenant(name) : catalog_->FindTenant(name));
  // Changes (and removals) are serialized by write_mu_, held by the caller.
  return &catalog_->Mutable(*tenant);
}

Result<TenantInfo> KeyHierarchy::ScheduleTenantDeletion(std::string_view name,
                                                        int64_t window_seconds) {
  RETURN_IF_ERROR(CheckWindow(window_seconds));
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Tenant * tenant, TenantToChange(name, /*serving=*/true));
  const int64_t due_at = clock_.NowSeconds() + window_seconds;
  RETURN_IF_ERROR(store_->ScheduleTenantDeletion(tenant->record.name, due_at));
  auto lock = catalog_->WriteLock();
  tenant->record.deletion_due_at = due_at;
  spdlog::info("tenant {}: deletion scheduled at {}", name, due_at);
  return catalog_->DescribeTenant(*tenant);
}

Result<TenantInfo> KeyHierarchy::CancelTenantDeletion(std::string_view name) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Tenant * tenant, TenantToChange(name, /*serving=*/false));
  if (!tenant->record.deletion_due_at) {
    return Error(Code::kInvalidArgument,
                 "tenant '" + std::string(name) + "' is not pending deletion");
  }
  RETURN_IF_ERROR(store_->CancelTenantDeletion(tenant->record.name));
  auto lock = catalog_->WriteLock();
  tenant->record.deletion_due_at.reset();
  spdlog::info("tenant {}: deletion cancelled", name);
  return catalog_->DescribeTenant(*tenant);
}

Status KeyHierarchy::SetRotationCeiling(std::string_view name, std::optional<int64_t> seconds) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(Tenant * tenant, TenantToChange(name, /*serving=*/false));
  auto lock = catalog_->WriteLock();
  tenant->rotation_ceiling_seconds = seconds;
  return OkStatus();
}

}  // namespace kmsd
