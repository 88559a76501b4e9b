#include "protocol/operations.h"

namespace kmsd {
namespace {

using P = Permission;
using R = Resource;

// The one table of operations. Order follows OpId (checked below).
constexpr std::array<OperationInfo, kOperationCount> kTable = {{
    {OpId::kStatus, "status", false, false, P::kServiceRead, R::kService},
    {OpId::kHealth, "health", false, false, P::kServiceRead, R::kService},
    {OpId::kKeystoreBackup, "keystore.backup", false, false, P::kServiceBackup, R::kService},
    {OpId::kTenantCreate, "tenant.create", true, true, P::kTenantCreate, R::kTenant},
    {OpId::kTenantDescribe, "tenant.describe", true, true, P::kTenantRead, R::kTenant},
    {OpId::kTenantScheduleDeletion, "tenant.schedule-deletion", true, false, P::kTenantDelete,
     R::kTenant},
    {OpId::kTenantCancelDeletion, "tenant.cancel-deletion", true, true, P::kTenantDelete,
     R::kTenant},
    {OpId::kTenantList, "tenant.list", false, false, P::kTenantList, R::kService},
    {OpId::kKeyCreate, "key.create", true, false, P::kKeyCreate, R::kTenant},
    {OpId::kKeyDescribe, "key.describe", true, false, P::kKeyRead, R::kKey},
    {OpId::kKeyList, "key.list", true, false, P::kKeyRead, R::kTenant},
    {OpId::kKeyRotate, "key.rotate", true, false, P::kKeyRotate, R::kKey},
    {OpId::kKeyEnable, "key.enable", true, false, P::kKeyManage, R::kKey},
    {OpId::kKeyDisable, "key.disable", true, false, P::kKeyManage, R::kKey},
    {OpId::kKeyScheduleDeletion, "key.schedule-deletion", true, false, P::kKeyDelete, R::kKey},
    {OpId::kKeyCancelDeletion, "key.cancel-deletion", true, false, P::kKeyDelete, R::kKey},
    {OpId::kKeySetRotation, "key.set-rotation", true, false, P::kKeyRotate, R::kKey},
    {OpId::kKeySetMinDecryptionVersion, "key.set-min-decryption-version", true, false,
     P::kKeyManage, R::kKey},
    {OpId::kKeyListVersions, "key.list-versions", true, false, P::kKeyRead, R::kKey},
    {OpId::kAliasCreate, "alias.create", true, false, P::kAliasManage, R::kAlias},
    {OpId::kAliasUpdate, "alias.update", true, false, P::kAliasManage, R::kAlias},
    {OpId::kAliasDelete, "alias.delete", true, false, P::kAliasManage, R::kAlias},
    {OpId::kAliasList, "alias.list", true, false, P::kAliasRead, R::kTenant},
    {OpId::kEncrypt, "encrypt", true, false, P::kEncrypt, R::kKey},
    {OpId::kDecrypt, "decrypt", true, false, P::kDecrypt, R::kKey},
    {OpId::kReEncrypt, "re-encrypt", true, false, P::kReEncryptFrom, R::kKey},
    {OpId::kBatchEncrypt, "batch-encrypt", true, false, P::kEncrypt, R::kKey},
    {OpId::kBatchDecrypt, "batch-decrypt", true, false, P::kDecrypt, R::kKey},
    {OpId::kBatchReEncrypt, "batch-re-encrypt", true, false, P::kReEncryptFrom, R::kKey},
    {OpId::kGenerateDataKey, "generate-data-key", true, false, P::kGenerateDataKey, R::kKey},
    {OpId::kGenerateDataKeyWithoutPlaintext, "generate-data-key-without-plaintext", true, false,
     P::kGenerateDataKey, R::kKey},
    {OpId::kGenerateRandom, "generate-random", false, false, P::kGenerateRandom, R::kService},
    {OpId::kPrincipalCreate, "principal.create", true, false, P::kPrincipalManage, R::kPrincipal},
    {OpId::kPrincipalDescribe, "principal.describe", true, false, P::kPrincipalRead, R::kPrincipal},
    {OpId::kPrincipalList, "principal.list", true, false, P::kPrincipalRead, R::kTenant},
    {OpId::kPrincipalDelete, "principal.delete", true, true, P::kPrincipalManage, R::kPrincipal},
    {OpId::kPrincipalSetRoles, "principal.set-roles", true, false, P::kPrincipalManage,
     R::kPrincipal},
    {OpId::kApiKeyCreate, "apikey.create", true, false, P::kApiKeyManage, R::kPrincipal},
    {OpId::kApiKeyList, "apikey.list", true, true, P::kApiKeyRead, R::kTenant},
    {OpId::kApiKeyRevoke, "apikey.revoke", true, true, P::kApiKeyManage, R::kApiKey},
}};

constexpr bool InOpIdOrder() {
  for (size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<size_t>(kTable[i].id) != i) return false;
  }
  return true;
}
static_assert(InOpIdOrder(), "kTable must list the operations in OpId order");

}  // namespace

const std::array<OperationInfo, kOperationCount>& Operations() { return kTable; }

const OperationInfo& InfoOf(OpId id) { return kTable[static_cast<size_t>(id)]; }

const OperationInfo* FindOperation(std::string_view name) {
  for (const auto& info : kTable) {
    if (info.name == name) return &info;
  }
  return nullptr;
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
  }
  return "unknown";
}

}  // namespace kmsd
