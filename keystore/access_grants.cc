// AccessDirectory's custom roles and grants (access_directory.h). Same rules
// as its principals: every change is durable before memory changes, under
// write_mu_; readers take mu_ shared.
#include <algorithm>

#include "keystore/access_directory.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

Status RoleNotFound(std::string_view tenant, std::string_view name) {
  return Status(Code::kNotFound,
                "role '" + ShownName(name) + "' not found in tenant '" + ShownName(tenant) + "'");
}

Status GrantNotFound(std::string_view tenant, std::string_view id) {
  return Status(Code::kNotFound,
                "grant '" + ShownName(id) + "' not found in tenant '" + ShownName(tenant) + "'");
}

}  // namespace

std::shared_ptr<const RoleCatalog> AccessDirectory::RolesOf(std::string_view tenant) const {
  std::shared_lock lock(mu_);
  auto it = roles_.find(tenant);
  if (it == roles_.end()) return std::make_shared<const RoleCatalog>();
  return it->second;
}

Result<RoleRecord> AccessDirectory::WriteRole(RoleRecord role, const RoleValidator& validate,
                                              bool create) {
  std::lock_guard write(write_mu_);
  const int64_t now = clock_.NowSeconds();
  RoleCatalog changed;
  {
    std::shared_lock lock(mu_);
    if (auto it = roles_.find(role.tenant); it != roles_.end()) changed = *it->second;
  }
  auto existing = changed.find(role.name);
  if (create && existing != changed.end()) {
    return Error(Code::kAlreadyExists,
                 "role '" + role.name + "' already exists in tenant '" + role.tenant + "'");
  }
  if (!create && existing == changed.end()) return Error(RoleNotFound(role.tenant, role.name));
  role.created_at = create ? now : existing->second.created_at;
  role.updated_at = now;
  changed[role.name] = role;
  RETURN_IF_ERROR(validate(role, changed));
  if (create) {
    RETURN_IF_ERROR(store_.WriteAccess(store_change::CreateRole{role}));
  } else {
    RETURN_IF_ERROR(store_.WriteAccess(store_change::UpdateRole{role}));
  }
  std::unique_lock lock(mu_);
  roles_[role.tenant] = std::make_shared<const RoleCatalog>(std::move(changed));
  Changed();
  return role;
}

Result<RoleRecord> AccessDirectory::CreateRole(RoleRecord role, const RoleValidator& validate) {
  return WriteRole(std::move(role), validate, /*create=*/true);
}

Result<RoleRecord> AccessDirectory::UpdateRole(RoleRecord role, const RoleValidator& validate) {
  return WriteRole(std::move(role), validate, /*create=*/false);
}

Result<RoleRecord> AccessDirectory::DescribeRole(std::string_view tenant,
                                                 std::string_view name) const {
  const auto roles = RolesOf(tenant);
  auto it = roles->find(name);
  if (it == roles->end()) return Error(RoleNotFound(tenant, name));
  return it->second;
}

std::vector<RoleRecord> AccessDirectory::ListRoles(std::string_view tenant) const {
  std::vector<RoleRecord> out;
  for (const auto& [name, role] : *RolesOf(tenant)) out.push_back(role);
  return out;
}

Status AccessDirectory::DeleteRole(std::string_view tenant, std::string_view name) {
  std::lock_guard write(write_mu_);
  RoleCatalog changed;
  {
    std::shared_lock lock(mu_);
    auto catalog = roles_.find(tenant);
    if (catalog == roles_.end() || !catalog->second->contains(name)) {
      return RoleNotFound(tenant, name);
    }
    changed = *catalog->second;
    for (auto it = principals_.lower_bound(PrincipalKey{tenant, ""});
         it != principals_.end() && it->first.first == tenant; ++it) {
      const auto& roles = it->second->roles;
      if (std::find(roles.begin(), roles.end(), name) != roles.end()) {
        return Status(Code::kInvalidArgument, "role '" + ShownName(name) +
                                                  "' is held by principal '" + it->second->name +
                                                  "': change its roles first");
      }
    }
  }
  for (const auto& [other, role] : changed) {
    if (std::find(role.inherits.begin(), role.inherits.end(), name) != role.inherits.end()) {
      return Status(Code::kInvalidArgument, "role '" + ShownName(name) +
                                                "' is inherited by role '" + other +
                                                "': change that role first");
    }
  }
  RETURN_IF_ERROR(
      store_.WriteAccess(store_change::DeleteRole{std::string(tenant), std::string(name)}));
  changed.erase(changed.find(name));
  std::unique_lock lock(mu_);
  roles_[std::string(tenant)] = std::make_shared<const RoleCatalog>(std::move(changed));
  Changed();
  return OkStatus();
}

Result<GrantRecord> AccessDirectory::CreateGrant(GrantRecord grant) {
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    RETURN_IF_ERROR(CheckPrincipalHere(grant.tenant, grant.principal));
  }
  ASSIGN_OR_RETURN(grant.id, RandomId());
  grant.created_at = clock_.NowSeconds();
  RETURN_IF_ERROR(store_.WriteAccess(store_change::CreateGrant{grant}));
  std::unique_lock lock(mu_);
  grants_[grant.id] = grant;
  Changed();
  return grant;
}

std::vector<GrantRecord> AccessDirectory::ListGrants(std::string_view tenant,
                                                     const GrantFilter& filter) const {
  std::shared_lock lock(mu_);
  std::vector<GrantRecord> out;
  for (const auto& [id, grant] : grants_) {
    if (grant.tenant != tenant) continue;
    if (filter.key_id && grant.key_id != *filter.key_id) continue;
    if (filter.principal && grant.principal != *filter.principal) continue;
    out.push_back(grant);
  }
  return out;
}

Result<GrantRecord> AccessDirectory::DescribeGrant(std::string_view tenant,
                                                   std::string_view id) const {
  std::shared_lock lock(mu_);
  auto it = grants_.find(id);
  if (it == grants_.end() || it->second.tenant != tenant) return Error(GrantNotFound(tenant, id));
  return it->second;
}

Result<GrantRecord> AccessDirectory::RetireGrant(std::string_view tenant, std::string_view id) {
  std::lock_guard write(write_mu_);
  ASSIGN_OR_RETURN(GrantRecord grant, DescribeGrant(tenant, id));
  if (grant.retired_at) return grant;
  grant.retired_at = clock_.NowSeconds();
  RETURN_IF_ERROR(
      store_.WriteAccess(store_change::RetireGrant{grant.tenant, grant.id, *grant.retired_at}));
  std::unique_lock lock(mu_);
  grants_[grant.id] = grant;
  Changed();
  return grant;
}

PrincipalAccessRecords AccessDirectory::AccessRecordsOf(std::string_view tenant,
                                                        std::string_view principal) const {
  std::shared_lock lock(mu_);
  PrincipalAccessRecords out;
  out.generation = generation();
  auto roles = roles_.find(tenant);
  out.roles = roles == roles_.end() ? std::make_shared<const RoleCatalog>() : roles->second;
  for (const auto& [id, grant] : grants_) {
    if (grant.tenant == tenant && grant.principal == principal && !grant.retired_at) {
      out.grants.push_back(grant);
    }
  }
  return out;
}

void AccessDirectory::ForgetKeyGrants(const KeyId& key_id) {
  std::lock_guard write(write_mu_);
  std::unique_lock lock(mu_);
  std::erase_if(grants_, [&](const auto& entry) { return entry.second.key_id == key_id; });
  Changed();
}

}  // namespace kmsd
