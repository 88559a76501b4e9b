// Access handlers: a tenant's principals (principal.create, .describe,
// .list, .delete, .set-roles) and their API keys (apikey.create, .list,
// .revoke). Roles are checked against the policy's roles here; the directory
// (keystore/access_directory.h) stores them.
//
// No escalation (access_rules.h): a principal (a manager) may give only
// permissions it holds itself, may not change its own roles, and may create
// API keys only for principals whose permissions, with their grants', it
// holds. So a manager, who may not use keys, cannot make itself or anyone it
// controls a user; only admins can.
#include <spdlog/spdlog.h>

#include "daemon/handlers/access_rules.h"
#include "policy/grants.h"
#include "policy/roles.h"
#include "protocol/access_types.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

ops::PrincipalDescription DescribePrincipal(const PrincipalRecord& record) {
  return {.tenant = record.tenant,
          .name = record.name,
          .roles = record.roles,
          .uids = record.uids,
          .gids = record.gids,
          .created_at = record.created_at};
}

ops::ApiKeyDescription DescribeApiKey(const ApiKeyRecord& record, int64_t now) {
  ops::ApiKeyDescription out;
  out.id = record.id;
  out.tenant = record.tenant;
  out.principal = record.principal;
  out.state = std::string(ApiKeyStateName(StateOf(record, now)));
  out.created_at = record.created_at;
  out.expires_at = record.expires_at;
  out.revoked_at = record.revoked_at;
  out.last_used_at = record.last_used_at;
  return out;
}

// How many uids and gids a principal may be bound to (each list).
constexpr size_t kMaxBoundPeers = 64;

Status CheckBoundPeers(const std::optional<std::vector<uint64_t>>& ids, std::string_view field) {
  if (!ids || ids->size() <= kMaxBoundPeers) return OkStatus();
  return Status(Code::kInvalidArgument, std::string(field) + " may list at most " +
                                            std::to_string(kMaxBoundPeers) + " ids");
}

// Everything a principal holding `roles` and `grants` may do somewhere.
PermissionSet HeldAnywhere(Call& call, const std::vector<std::string>& roles,
                           const std::vector<GrantRecord>& grants = {}) {
  PermissionSet held = Resolve(roles, *Directory(call).RolesOf(call.tenant())).Anywhere();
  for (const GrantRecord& grant : grants) held |= PermissionsOf(grant, Now(call));
  return held;
}

}  // namespace

Status CheckMayActAs(Call& call, std::string_view target, const std::string& what) {
  if (call.principal() == nullptr) return OkStatus();
  ASSIGN_OR_RETURN(PrincipalRecord record,
                   Directory(call).DescribePrincipal(call.tenant(), target));
  const std::vector<GrantRecord> grants =
      Directory(call).AccessRecordsOf(call.tenant(), record.name).grants;
  return CheckNoEscalation(call, HeldAnywhere(call, record.roles, grants), what);
}

namespace {

Result<ops::PrincipalDescription> Create(Call& call, const ops::PrincipalCreateRequest& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.name));
  RETURN_IF_ERROR(ValidateTenantRoles(request.roles, *Directory(call).RolesOf(call.tenant())));
  RETURN_IF_ERROR(CheckBoundPeers(request.uids, "uids"));
  RETURN_IF_ERROR(CheckBoundPeers(request.gids, "gids"));
  RETURN_IF_ERROR(CheckNoEscalation(call, HeldAnywhere(call, request.roles),
                                    "create principal '" + std::string(request.name) + "'"));
  PrincipalRecord record;
  record.tenant = std::string(call.tenant());
  record.name = std::string(request.name);
  record.roles = request.roles;
  record.uids = request.uids.value_or(std::vector<uint64_t>{});
  record.gids = request.gids.value_or(std::vector<uint64_t>{});
  ASSIGN_OR_RETURN(PrincipalRecord created, Directory(call).CreatePrincipal(std::move(record)));
  spdlog::info("tenant {}: principal {} created", created.tenant, created.name);
  return DescribePrincipal(created);
}

Result<ops::PrincipalDescription> Describe(Call& call, const ops::PrincipalArg& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.name));
  ASSIGN_OR_RETURN(PrincipalRecord record,
                   Directory(call).DescribePrincipal(call.tenant(), request.name));
  return DescribePrincipal(record);
}

Result<ops::PrincipalListReply> List(Call& call, const NoFields&) {
  // An unknown tenant is NOT_FOUND, not an empty list.
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  ops::PrincipalListReply out;
  for (const PrincipalRecord& record : Directory(call).ListPrincipals(call.tenant())) {
    out.principals.push_back(DescribePrincipal(record));
  }
  return out;
}

Result<NoFields> Delete(Call& call, const ops::PrincipalArg& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.name));
  RETURN_IF_ERROR(Directory(call).DeletePrincipal(call.tenant(), request.name));
  spdlog::info("tenant {}: principal {} deleted with its API keys", call.tenant(), request.name);
  return NoFields{};
}

Result<ops::PrincipalDescription> SetRoles(Call& call,
                                           const ops::PrincipalSetRolesRequest& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.name));
  RETURN_IF_ERROR(ValidateTenantRoles(request.roles, *Directory(call).RolesOf(call.tenant())));
  if (const PrincipalIdentity* caller = call.principal();
      caller != nullptr && caller->name == request.name) {
    return Error(Code::kAccessDenied,
                 "principal '" + caller->name + "' may not change its own roles");
  }
  RETURN_IF_ERROR(
      CheckNoEscalation(call, HeldAnywhere(call, request.roles),
                        "give principal '" + std::string(request.name) + "' these roles"));
  ASSIGN_OR_RETURN(PrincipalRecord record,
                   Directory(call).SetPrincipalRoles(call.tenant(), request.name, request.roles));
  return DescribePrincipal(record);
}

Result<ops::ApiKeyCreateReply> CreateKey(Call& call, const ops::ApiKeyCreateRequest& request) {
  RETURN_IF_ERROR(ValidatePrincipalName(request.principal));
  std::optional<int64_t> lifetime;
  if (request.expires_in_seconds) {
    if (*request.expires_in_seconds > static_cast<uint64_t>(kMaxApiKeyLifetimeSeconds)) {
      return Error(Code::kInvalidArgument,
                   "expires_in_seconds must be 1 to " + std::to_string(kMaxApiKeyLifetimeSeconds));
    }
    lifetime = static_cast<int64_t>(*request.expires_in_seconds);
  }
  RETURN_IF_ERROR(
      CheckMayActAs(call, request.principal,
                    "create an API key of principal '" + std::string(request.principal) + "'"));
  ASSIGN_OR_RETURN(NewApiKey key,
                   Directory(call).CreateApiKey(call.tenant(), request.principal, lifetime));
  spdlog::info("tenant {}: API key {} created for principal {}", call.tenant(), key.record.id,
               request.principal);
  ops::ApiKeyCreateReply out;
  static_cast<ops::ApiKeyDescription&>(out) = DescribeApiKey(key.record, Now(call));
  out.secret = std::move(key.secret);
  return out;
}

Result<ops::ApiKeyListReply> ListKeys(Call& call, const ops::ApiKeyListRequest& request) {
  if (request.principal) RETURN_IF_ERROR(ValidatePrincipalName(*request.principal));
  RETURN_IF_ERROR(StatusOf(call.hierarchy().DescribeTenant(call.tenant())));
  ASSIGN_OR_RETURN(std::vector<ApiKeyRecord> keys,
                   Directory(call).ListApiKeys(call.tenant(), request.principal));
  ops::ApiKeyListReply out;
  const int64_t now = Now(call);
  for (const ApiKeyRecord& key : keys) out.api_keys.push_back(DescribeApiKey(key, now));
  return out;
}

Result<ops::ApiKeyDescription> Revoke(Call& call, const ops::ApiKeyArg& request) {
  ASSIGN_OR_RETURN(ApiKeyRecord key, Directory(call).RevokeApiKey(call.tenant(), request.id));
  spdlog::info("tenant {}: API key {} revoked", call.tenant(), key.id);
  return DescribeApiKey(key, Now(call));
}

}  // namespace

void AddAccessHandlers(HandlerTable& table) {
  table.Add<ops::PrincipalCreate, Create>();
  table.Add<ops::PrincipalDescribe, Describe>();
  table.Add<ops::PrincipalList, List>();
  table.Add<ops::PrincipalDelete, Delete>();
  table.Add<ops::PrincipalSetRoles, SetRoles>();
  table.Add<ops::ApiKeyCreate, CreateKey>();
  table.Add<ops::ApiKeyList, ListKeys>();
  table.Add<ops::ApiKeyRevoke, Revoke>();
}

}  // namespace kmsd
