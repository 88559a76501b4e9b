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
};
inline constexpr size_t kOperationCount = 40;

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
};
inline constexpr size_t kPermissionCount = 23;

// What an operation acts on: the service itself, a tenant, a key (named in
// the request's `key`), an alias (named in `alias`), a principal (`name`) or
// an API key (`id`).
enum class Resource : uint8_t { kService, kTenant, kKey, kAlias, kPrincipal, kApiKey };

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

const std::array<OperationInfo, kOperationCount>& Operations();
const OperationInfo& InfoOf(OpId id);
// nullptr for a name that is not an operation of this version.
const OperationInfo* FindOperation(std::string_view name);

// "crypto:encrypt", "key:rotate", ... (the names roles use).
std::string_view PermissionName(Permission permission);
// The permission named so; nullopt for a name that is not one.
std::optional<Permission> PermissionNamed(std::string_view name);
std::string_view ResourceName(Resource resource);

}  // namespace kmsd
