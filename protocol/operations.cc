#include "protocol/operations.h"

namespace kmsd {
namespace {

using P = Permission;
using R = Resource;

}  // namespace

const std::array<OperationInfo, kOperationCount>& Operations() { return kOperationTable; }

const OperationInfo& InfoOf(OpId id) { return kOperationTable[static_cast<size_t>(id)]; }

const OperationInfo* FindOperation(std::string_view name) {
  for (const auto& info : kOperationTable) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

PermissionKind KindOfPermission(Permission permission) {
  switch (permission) {
    case P::kEncrypt:
    case P::kDecrypt:
    case P::kReEncryptFrom:
    case P::kReEncryptTo:
    case P::kGenerateDataKey:
    case P::kGenerateRandom:
      return PermissionKind::kData;
    case P::kServiceRead:
    case P::kTenantRead:
    case P::kTenantList:
    case P::kKeyRead:
    case P::kAliasRead:
    case P::kPrincipalRead:
    case P::kApiKeyRead:
    case P::kRoleRead:
    case P::kGrantRead:
    case P::kPolicyRead:
    case P::kSessionRead:
    case P::kAuditRead:
    case P::kAuditVerify:
      return PermissionKind::kRead;
    default:
      return PermissionKind::kChange;
  }
}

std::string_view PermissionName(Permission permission) {
  switch (permission) {
    case P::kServiceRead:
      return "service:read";
    case P::kServiceBackup:
      return "service:backup";
    case P::kTenantCreate:
      return "tenant:create";
    case P::kTenantRead:
      return "tenant:read";
    case P::kTenantList:
      return "tenant:list";
    case P::kTenantDelete:
      return "tenant:delete";
    case P::kKeyCreate:
      return "key:create";
    case P::kKeyRead:
      return "key:read";
    case P::kKeyRotate:
      return "key:rotate";
    case P::kKeyManage:
      return "key:manage";
    case P::kKeyDelete:
      return "key:delete";
    case P::kAliasRead:
      return "alias:read";
    case P::kAliasManage:
      return "alias:manage";
    case P::kEncrypt:
      return "crypto:encrypt";
    case P::kDecrypt:
      return "crypto:decrypt";
    case P::kReEncryptFrom:
      return "crypto:re-encrypt-from";
    case P::kReEncryptTo:
      return "crypto:re-encrypt-to";
    case P::kGenerateDataKey:
      return "crypto:generate-data-key";
    case P::kGenerateRandom:
      return "crypto:generate-random";
    case P::kPrincipalRead:
      return "principal:read";
    case P::kPrincipalManage:
      return "principal:manage";
    case P::kApiKeyRead:
      return "apikey:read";
    case P::kApiKeyManage:
      return "apikey:manage";
    case P::kRoleRead:
      return "role:read";
    case P::kRoleManage:
      return "role:manage";
    case P::kGrantRead:
      return "grant:read";
    case P::kGrantManage:
      return "grant:manage";
    case P::kPolicyRead:
      return "policy:read";
    case P::kPolicyManage:
      return "policy:manage";
    case P::kSessionLogin:
      return "session:login";
    case P::kSessionRead:
      return "session:read";
    case P::kSessionManage:
      return "session:manage";
    case P::kMfaManage:
      return "mfa:manage";
    case P::kAuditVerify:
      return "audit:verify";
    case P::kAuditRead:
      return "audit:read";
  }
  return "unknown";
}

std::optional<Permission> PermissionNamed(std::string_view name) {
  for (size_t i = 0; i < kPermissionCount; ++i) {
    const auto permission = static_cast<Permission>(i);
    if (PermissionName(permission) == name) return permission;
  }
  return std::nullopt;
}

std::string_view ResourceName(Resource resource) {
  switch (resource) {
    case R::kService:
      return "service";
    case R::kTenant:
      return "tenant";
    case R::kKey:
      return "key";
    case R::kAlias:
      return "alias";
    case R::kPrincipal:
      return "principal";
    case R::kApiKey:
      return "apikey";
    case R::kRole:
      return "role";
    case R::kGrant:
      return "grant";
  }
  return "unknown";
}

}  // namespace kmsd
