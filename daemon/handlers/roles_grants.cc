// Custom roles (role.create, .update, .describe, .list, .delete) and grants
// (grant.create, .list, .retire) of a tenant. The policy says what they mean
// (policy/roles.h, policy/grants.h); the directory stores them.
//
// No escalation (access_rules.h): a principal may define or change only
// roles whose permissions, with what they inherit, it holds everywhere, and
// may not change a role it holds itself. A grant gives use of one key to
// another principal: the granter needs grant:manage on that key, not the
// operations (so a manager may let a user encrypt without encrypting itself,
// the separation of duties of docs/POLICY.md), and never grants to itself.
#include <spdlog/spdlog.h>

#include "daemon/handlers/access_rules.h"
#include "policy/grants.h"
#include "protocol/access_types.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

ops::RoleDescription DescribeRole(const RoleRecord& role, const RoleCatalog& roles) {
  ops::RoleDescription out{.tenant = role.tenant,
                           .name = role.name,
                           .inherits = role.inherits,
                           .allow = role.allow,
                           .permissions = {},
                           .narrowed = {},
                           .created_at = role.created_at,
                           .updated_at = role.updated_at};
  const EffectivePermissions gives = Resolve({role.name}, roles);
  for (size_t i = 0; i < kPermissionCount; ++i) {
    if (gives.everywhere.test(i)) {
      out.permissions.emplace_back(PermissionName(static_cast<Permission>(i)));
    }
  }
  for (const ScopedPermission& p : gives.scoped) out.narrowed.push_back(StatementOf(p));
  return out;
}

// True when the principal calling holds `role`, directly or through what
// its roles inherit.
bool CallerHolds(Call& call, const std::string& role, const RoleCatalog& roles) {
  const PrincipalIdentity* caller = call.principal();
  if (caller == nullptr) return false;
  auto record = Directory(call).DescribePrincipal(call.tenant(), caller->name);
  return record && RolesReached(record->roles, roles).contains(role);
}

Result<ops::RoleDescription> WriteRole(Call& call, const ops::RoleRequest& request, bool create) {
  RETURN_IF_ERROR(ValidateRoleName(request.name));
  RoleRecord role;
  role.tenant = std::string(call.tenant());
  role.name = std::string(request.name);
  role.inherits = request.inherits.value_or(std::vector<std::string>{});
  role.allow = request.allow.value_or(std::vector<std::string>{});
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  auto validate = [&](const RoleRecord& changed, const RoleCatalog& roles) -> Status {
    RETURN_IF_ERROR(ValidateCustomRole(changed, roles));
    if (!create && CallerHolds(call, changed.name, roles)) {
      return Status(Code::kAccessDenied, "principal '" + call.principal()->name +
                                             "' may not change role '" + changed.name +
                                             "', which it holds");
    }
    return CheckNoEscalation(call, Resolve({changed.name}, roles).Anywhere(),
                             (create ? "create role '" : "change role '") + changed.name + "'");
  };
  AccessDirectory& directory = Directory(call);
  ASSIGN_OR_RETURN(RoleRecord written, create ? directory.CreateRole(std::move(role), validate)
                                              : directory.UpdateRole(std::move(role), validate));
  spdlog::info("tenant {}: role {} {}", written.tenant, written.name,
               create ? "created" : "changed");
  return DescribeRole(written, *directory.RolesOf(call.tenant()));
}

Result<ops::RoleDescription> CreateRole(Call& call, const ops::RoleRequest& request) {
  return WriteRole(call, request, /*create=*/true);
}

Result<ops::RoleDescription> UpdateRole(Call& call, const ops::RoleRequest& request) {
  return WriteRole(call, request, /*create=*/false);
}

Result<ops::RoleDescription> DescribeRoleOp(Call& call, const ops::RoleArg& request) {
  RETURN_IF_ERROR(ValidateRoleName(request.name));
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  const auto roles = Directory(call).RolesOf(call.tenant());
  auto it = roles->find(request.name);
  if (it == roles->end()) {
    if (TenantRolePermissions(request.name)) {
      return Error(Code::kNotFound, "role '" + std::string(request.name) +
                                        "' is built in, not a custom role (docs/POLICY.md)");
    }
    return Error(Code::kNotFound, "role '" + ShownName(request.name) + "' not found in tenant '" +
                                      std::string(call.tenant()) + "'");
  }
  return DescribeRole(it->second, *roles);
}

Result<ops::RoleListReply> ListRoles(Call& call, const NoFields&) {
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  const auto roles = Directory(call).RolesOf(call.tenant());
  ops::RoleListReply out;
  for (const auto& [name, role] : *roles) out.roles.push_back(DescribeRole(role, *roles));
  return out;
}

Result<NoFields> DeleteRole(Call& call, const ops::RoleArg& request) {
  RETURN_IF_ERROR(ValidateRoleName(request.name));
  RETURN_IF_ERROR(Directory(call).DeleteRole(call.tenant(), request.name));
  spdlog::info("tenant {}: role {} deleted", call.tenant(), request.name);
  return NoFields{};
}

ops::GrantDescription DescribeGrant(Call& call, const GrantRecord& grant) {
  ops::GrantDescription out;
  out.id = grant.id;
  out.tenant = grant.tenant;
  out.key_id = KeyIdToHex(grant.key_id);
  if (auto key = call.hierarchy().DescribeKeyById(grant.tenant, grant.key_id)) {
    out.key_name = key->name;
  }
  out.principal = grant.principal;
  out.operations = grant.operations;
  out.context = grant.context;
  out.state = std::string(GrantStateName(StateOf(grant, Now(call))));
  out.created_at = grant.created_at;
  out.expires_at = grant.expires_at;
  out.retired_at = grant.retired_at;
  return out;
}

Result<ops::GrantDescription> CreateGrant(Call& call, const ops::GrantCreateRequest& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.principal));
  RETURN_IF_ERROR(ValidateGrantOperations(request.operations));
  const EncryptionContext constraints = request.context.value_or(EncryptionContext{});
  RETURN_IF_ERROR(ValidateGrantConstraints(constraints));
  if (request.expires_in_seconds &&
      (*request.expires_in_seconds == 0 ||
       *request.expires_in_seconds > static_cast<uint64_t>(kMaxGrantLifetimeSeconds))) {
    return Error(Code::kInvalidArgument,
                 "expires_in_seconds must be 1 to " + std::to_string(kMaxGrantLifetimeSeconds));
  }
  if (const PrincipalIdentity* caller = call.principal();
      caller != nullptr && caller->name == request.principal) {
    return Error(Code::kAccessDenied, "principal '" + caller->name + "' may not grant to itself");
  }
  ASSIGN_OR_RETURN(KeyInfo key, call.hierarchy().DescribeKey(call.tenant(), request.key));
  GrantRecord grant;
  grant.tenant = std::string(call.tenant());
  grant.principal = std::string(request.principal);
  grant.key_id = key.id;
  grant.operations = request.operations;
  grant.context = constraints;
  if (request.expires_in_seconds) {
    grant.expires_at = Now(call) + static_cast<int64_t>(*request.expires_in_seconds);
  }
  ASSIGN_OR_RETURN(GrantRecord created, Directory(call).CreateGrant(std::move(grant)));
  spdlog::info("tenant {}: grant {} on key {} created for principal {}", created.tenant, created.id,
               key.name, created.principal);
  return DescribeGrant(call, created);
}

Result<ops::GrantListReply> ListGrants(Call& call, const ops::GrantListRequest& request) {
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  GrantFilter filter;
  if (request.key) {
    ASSIGN_OR_RETURN(KeyInfo key, call.hierarchy().DescribeKey(call.tenant(), *request.key));
    filter.key_id = key.id;
  }
  if (request.principal) {
    RETURN_IF_ERROR(ValidatePrincipalName(*request.principal));
    RETURN_IF_ERROR(StatusOf(Directory(call).DescribePrincipal(call.tenant(), *request.principal)));
    filter.principal = std::string(*request.principal);
  }
  ops::GrantListReply out;
  for (const GrantRecord& grant : Directory(call).ListGrants(call.tenant(), filter)) {
    out.grants.push_back(DescribeGrant(call, grant));
  }
  return out;
}

Result<ops::GrantDescription> RetireGrant(Call& call, const ops::GrantArg& request) {
  ASSIGN_OR_RETURN(GrantRecord grant, Directory(call).RetireGrant(call.tenant(), request.id));
  spdlog::info("tenant {}: grant {} retired", call.tenant(), grant.id);
  return DescribeGrant(call, grant);
}

}  // namespace

void AddRoleAndGrantHandlers(HandlerTable& table) {
  table.Add<ops::RoleCreate, CreateRole>();
  table.Add<ops::RoleUpdate, UpdateRole>();
  table.Add<ops::RoleDescribe, DescribeRoleOp>();
  table.Add<ops::RoleList, ListRoles>();
  table.Add<ops::RoleDelete, DeleteRole>();
  table.Add<ops::GrantCreate, CreateGrant>();
  table.Add<ops::GrantList, ListGrants>();
  table.Add<ops::GrantRetire, RetireGrant>();
}

}  // namespace kmsd
