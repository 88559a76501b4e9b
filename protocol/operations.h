// The operations of protocol v1, declared once (docs/PROTOCOL.md describes
// each; docs/ARCHITECTURE.md says how to add one).
//
// OperationInfo is what the daemon's pipeline needs before it runs an
// operation: its wire name, whether the request names a tenant, whether it is
// served while that tenant is pending deletion, the permission it needs and
// the kind of resource it acts on. Each operation also has a type in
// protocol/operation_types.h naming its request and reply (e.g. ops::Encrypt).
// Batch operations and re-encrypt need their permission once more per item
// (and re-encrypt's destination kReEncryptTo): the handler asks for it.
// Constant data; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kmsd {

enum class OpId : uint8_t {
  kStatus,
  kHealth,
  kKeystoreBackup,
  kTenantCreate,
  kTenantDescribe,
  kTenantScheduleDeletion,
  kTenantCancelDeletion,
  kTenantList,
  kKeyCreate,
  kKeyDescribe,
  kKeyList,
  kKeyRotate,
  kKeyEnable,
  kKeyDisable,
  kKeyScheduleDeletion,
  kKeyCancelDeletion,
  kKeySetRotation,
  kKeySetMinDecryptionVersion,
  kKeyListVersions,
  kAliasCreate,
  kAliasUpdate,
  kAliasDelete,
  kAliasList,
  kEncrypt,
  kDecrypt,
  kReEncrypt,
  kBatchEncrypt,
  kBatchDecrypt,
  kBatchReEncrypt,
  kGenerateDataKey,
  kGenerateDataKeyWithoutPlaintext,
  kGenerateRandom,
  kPrincipalCreate,
  kPrincipalDescribe,
  kPrincipalList,
  kPrincipalDelete,
  kPrincipalSetRoles,
  kApiKeyCreate,
  kApiKeyList,
  kApiKeyRevoke,
  kRoleCreate,
  kRoleUpdate,
  kRoleDescribe,
  kRoleList,
  kRoleDelete,
  kGrantCreate,
  kGrantList,
  kGrantRetire,
  kTenantPutPolicy,
  kTenantGetPolicy,
  kSessionLogin,
  kSessionLogout,
  kSessionList,
  kSessionRevoke,
  kMfaEnroll,
  kAuditVerify,
  kAuditExport,
  kAuditCheckSeals,
};
inline constexpr size_t kOperationCount = 58;

// What a caller must be allowed to do. Roles (policy/roles.h) and grants
// are sets of these; admins may do all of them.
enum class Permission : uint8_t {
  kServiceRead,
  kServiceBackup,
  kTenantCreate,
  kTenantRead,
  kTenantList,
  kTenantDelete,
  kKeyCreate,
  kKeyRead,
  kKeyRotate,
  kKeyManage,
  kKeyDelete,
  kAliasRead,
  kAliasManage,
  kEncrypt,
  kDecrypt,
  kReEncryptFrom,
  kReEncryptTo,
  kGenerateDataKey,
  kGenerateRandom,
  kPrincipalRead,
  kPrincipalManage,
  kApiKeyRead,
  kApiKeyManage,
  kRoleRead,
  kRoleManage,
  kGrantRead,
  kGrantManage,
  kPolicyRead,
  kPolicyManage,
  kSessionLogin,
  kSessionRead,
  kSessionManage,
  kMfaManage,
  kAuditVerify,
  kAuditRead,
};
inline constexpr size_t kPermissionCount = 35;

// What an operation acts on: the service itself, a tenant, a key (named in
// the request's `key`, or by its ciphertext), an alias (named in `alias`), a
// principal (`name`), an API key (`id`), a custom role (`name`) or a grant
// (`id`). Roles may scope a permission to one key or alias (policy/roles.h):
// that applies to the operations on keys and aliases only.
enum class Resource : uint8_t {
  kService,
  kTenant,
  kKey,
  kAlias,
  kPrincipal,
  kApiKey,
  kRole,
  kGrant
};

struct OperationInfo {
  OpId id;
  std::string_view name;  // on the wire
  bool needs_tenant;      // the request must name a tenant (else must not)
  // Also served while the tenant is pending deletion (every other tenant
  // operation is KEY_PENDING_DELETION then).
  bool serves_pending_tenant;
  Permission permission;
  Resource resource;
};

// The one table of operations. Order follows OpId (checked below).
// clang-format off
inline constexpr std::array<OperationInfo, kOperationCount> kOperationTable = {{
    {OpId::kStatus, "status", false, false, Permission::kServiceRead, Resource::kService},
    {OpId::kHealth, "health", false, false, Permission::kServiceRead, Resource::kService},
    {OpId::kKeystoreBackup, "keystore.backup", false, false, Permission::kServiceBackup, Resource::kService},
    {OpId::kTenantCreate, "tenant.create", true, true, Permission::kTenantCreate, Resource::kTenant},
    {OpId::kTenantDescribe, "tenant.describe", true, true, Permission::kTenantRead, Resource::kTenant},
    {OpId::kTenantScheduleDeletion, "tenant.schedule-deletion", true, false, Permission::kTenantDelete,
     Resource::kTenant},
    {OpId::kTenantCancelDeletion, "tenant.cancel-deletion", true, true, Permission::kTenantDelete,
     Resource::kTenant},
    {OpId::kTenantList, "tenant.list", false, false, Permission::kTenantList, Resource::kService},
    {OpId::kKeyCreate, "key.create", true, false, Permission::kKeyCreate, Resource::kTenant},
    {OpId::kKeyDescribe, "key.describe", true, false, Permission::kKeyRead, Resource::kKey},
    {OpId::kKeyList, "key.list", true, false, Permission::kKeyRead, Resource::kTenant},
    {OpId::kKeyRotate, "key.rotate", true, false, Permission::kKeyRotate, Resource::kKey},
    {OpId::kKeyEnable, "key.enable", true, false, Permission::kKeyManage, Resource::kKey},
    {OpId::kKeyDisable, "key.disable", true, false, Permission::kKeyManage, Resource::kKey},
    {OpId::kKeyScheduleDeletion, "key.schedule-deletion", true, false, Permission::kKeyDelete, Resource::kKey},
    {OpId::kKeyCancelDeletion, "key.cancel-deletion", true, false, Permission::kKeyDelete, Resource::kKey},
    {OpId::kKeySetRotation, "key.set-rotation", true, false, Permission::kKeyRotate, Resource::kKey},
    {OpId::kKeySetMinDecryptionVersion, "key.set-min-decryption-version", true, false,
     Permission::kKeyManage, Resource::kKey},
    {OpId::kKeyListVersions, "key.list-versions", true, false, Permission::kKeyRead, Resource::kKey},
    {OpId::kAliasCreate, "alias.create", true, false, Permission::kAliasManage, Resource::kAlias},
    {OpId::kAliasUpdate, "alias.update", true, false, Permission::kAliasManage, Resource::kAlias},
    {OpId::kAliasDelete, "alias.delete", true, false, Permission::kAliasManage, Resource::kAlias},
    {OpId::kAliasList, "alias.list", true, false, Permission::kAliasRead, Resource::kTenant},
    {OpId::kEncrypt, "encrypt", true, false, Permission::kEncrypt, Resource::kKey},
    {OpId::kDecrypt, "decrypt", true, false, Permission::kDecrypt, Resource::kKey},
    {OpId::kReEncrypt, "re-encrypt", true, false, Permission::kReEncryptFrom, Resource::kKey},
    {OpId::kBatchEncrypt, "batch-encrypt", true, false, Permission::kEncrypt, Resource::kKey},
    {OpId::kBatchDecrypt, "batch-decrypt", true, false, Permission::kDecrypt, Resource::kKey},
    {OpId::kBatchReEncrypt, "batch-re-encrypt", true, false, Permission::kReEncryptFrom, Resource::kKey},
    {OpId::kGenerateDataKey, "generate-data-key", true, false, Permission::kGenerateDataKey, Resource::kKey},
    {OpId::kGenerateDataKeyWithoutPlaintext, "generate-data-key-without-plaintext", true, false,
     Permission::kGenerateDataKey, Resource::kKey},
    {OpId::kGenerateRandom, "generate-random", false, false, Permission::kGenerateRandom, Resource::kService},
    {OpId::kPrincipalCreate, "principal.create", true, false, Permission::kPrincipalManage, Resource::kPrincipal},
    {OpId::kPrincipalDescribe, "principal.describe", true, false, Permission::kPrincipalRead, Resource::kPrincipal},
    {OpId::kPrincipalList, "principal.list", true, false, Permission::kPrincipalRead, Resource::kTenant},
    {OpId::kPrincipalDelete, "principal.delete", true, true, Permission::kPrincipalManage, Resource::kPrincipal},
    {OpId::kPrincipalSetRoles, "principal.set-roles", true, false, Permission::kPrincipalManage,
     Resource::kPrincipal},
    {OpId::kApiKeyCreate, "apikey.create", true, false, Permission::kApiKeyManage, Resource::kPrincipal},
    {OpId::kApiKeyList, "apikey.list", true, true, Permission::kApiKeyRead, Resource::kTenant},
    {OpId::kApiKeyRevoke, "apikey.revoke", true, true, Permission::kApiKeyManage, Resource::kApiKey},
    {OpId::kRoleCreate, "role.create", true, false, Permission::kRoleManage, Resource::kRole},
    {OpId::kRoleUpdate, "role.update", true, false, Permission::kRoleManage, Resource::kRole},
    {OpId::kRoleDescribe, "role.describe", true, false, Permission::kRoleRead, Resource::kRole},
    {OpId::kRoleList, "role.list", true, false, Permission::kRoleRead, Resource::kTenant},
    {OpId::kRoleDelete, "role.delete", true, true, Permission::kRoleManage, Resource::kRole},
    {OpId::kGrantCreate, "grant.create", true, false, Permission::kGrantManage, Resource::kKey},
    {OpId::kGrantList, "grant.list", true, true, Permission::kGrantRead, Resource::kTenant},
    {OpId::kGrantRetire, "grant.retire", true, true, Permission::kGrantManage, Resource::kGrant},
    {OpId::kTenantPutPolicy, "tenant.put-policy", true, false, Permission::kPolicyManage, Resource::kTenant},
    {OpId::kTenantGetPolicy, "tenant.get-policy", true, true, Permission::kPolicyRead, Resource::kTenant},
    {OpId::kSessionLogin, "session.login", true, false, Permission::kSessionLogin, Resource::kTenant},
    {OpId::kSessionLogout, "session.logout", true, true, Permission::kSessionLogin, Resource::kTenant},
    {OpId::kSessionList, "session.list", true, true, Permission::kSessionRead, Resource::kTenant},
    {OpId::kSessionRevoke, "session.revoke", true, true, Permission::kSessionManage, Resource::kTenant},
    {OpId::kMfaEnroll, "mfa.enroll", true, false, Permission::kMfaManage, Resource::kPrincipal},
    {OpId::kAuditVerify, "audit.verify", false, false, Permission::kAuditVerify, Resource::kService},
    {OpId::kAuditExport, "audit.export", true, true, Permission::kAuditRead, Resource::kTenant},
    {OpId::kAuditCheckSeals, "audit.check-seals", true, true, Permission::kAuditRead, Resource::kTenant},
}};

constexpr bool OperationsInOpIdOrder() {
  for (size_t i = 0; i < kOperationTable.size(); ++i) {
    if (static_cast<size_t>(kOperationTable[i].id) != i) return false;
  }
  return true;
}
// clang-format on
static_assert(OperationsInOpIdOrder(), "kOperationTable must list the operations in OpId order");

const std::array<OperationInfo, kOperationCount>& Operations();
const OperationInfo& InfoOf(OpId id);
// nullptr for a name that is not an operation of this version.
const OperationInfo* FindOperation(std::string_view name);

// What a permission does, for the rules that treat kinds alike (MFA, the
// audit log's details): reads change nothing (describe, list, get, verify,
// export); data permissions are the cryptographic operations.
enum class PermissionKind { kRead, kData, kChange };
PermissionKind KindOfPermission(Permission permission);

// "crypto:encrypt", "key:rotate", ... (the names roles use).
std::string_view PermissionName(Permission permission);
// The permission named so; nullopt for a name that is not one.
std::optional<Permission> PermissionNamed(std::string_view name);
std::string_view ResourceName(Resource resource);

}  // namespace kmsd
