// Every operation's type (protocol/operation_types.h and the family headers),
// listed once in OpId order, for code that must treat each operation's typed
// request or reply alike without naming them (the operation fuzzer,
// tests/fuzz/operation_fuzzer.cc). The static_asserts below tie the list to
// kOperationTable: an operation added to the table without its type here, or
// out of order, does not compile. Constant data.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>

#include "protocol/access_types.h"
#include "protocol/audit_types.h"
#include "protocol/operation_types.h"
#include "protocol/operations.h"
#include "protocol/policy_types.h"
#include "protocol/session_types.h"

namespace kmsd {

using AllOperations =
    std::tuple<ops::ServiceStatus, ops::Health, ops::KeystoreBackup, ops::TenantCreate,
               ops::TenantDescribe, ops::TenantScheduleDeletion, ops::TenantCancelDeletion,
               ops::TenantList, ops::KeyCreate, ops::KeyDescribe, ops::KeyList, ops::KeyRotate,
               ops::KeyEnable, ops::KeyDisable, ops::KeyScheduleDeletion, ops::KeyCancelDeletion,
               ops::KeySetRotation, ops::KeySetMinDecryptionVersion, ops::KeyListVersions,
               ops::AliasCreate, ops::AliasUpdate, ops::AliasDelete, ops::AliasList, ops::Encrypt,
               ops::Decrypt, ops::ReEncrypt, ops::BatchEncrypt, ops::BatchDecrypt,
               ops::BatchReEncrypt, ops::GenerateDataKey, ops::GenerateDataKeyWithoutPlaintext,
               ops::GenerateRandom, ops::PrincipalCreate, ops::PrincipalDescribe,
               ops::PrincipalList, ops::PrincipalDelete, ops::PrincipalSetRoles, ops::ApiKeyCreate,
               ops::ApiKeyList, ops::ApiKeyRevoke, ops::RoleCreate, ops::RoleUpdate,
               ops::RoleDescribe, ops::RoleList, ops::RoleDelete, ops::GrantCreate, ops::GrantList,
               ops::GrantRetire, ops::TenantPutPolicy, ops::TenantGetPolicy, ops::SessionLogin,
               ops::SessionLogout, ops::SessionList, ops::SessionRevoke, ops::MfaEnroll,
               ops::AuditVerify, ops::AuditExport, ops::AuditCheckSeals>;

namespace operations_internal {
template <size_t... I>
constexpr bool InTableOrder(std::index_sequence<I...>) {
  return ((std::tuple_element_t<I, AllOperations>::kId == kOperationTable[I].id) && ...);
}
}  // namespace operations_internal

static_assert(std::tuple_size_v<AllOperations> == kOperationCount,
              "AllOperations must list every operation of kOperationTable");
static_assert(operations_internal::InTableOrder(std::make_index_sequence<kOperationCount>()),
              "AllOperations must follow kOperationTable's order");

// Calls `fn.template operator()<Op>()` (which returns nothing) for the
// operation `id`.
template <typename Fn>
void VisitOperation(OpId id, Fn&& fn) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    ((static_cast<size_t>(id) == I
          ? fn.template operator()<std::tuple_element_t<I, AllOperations>>()
          : void()),
     ...);
  }
  (std::make_index_sequence<kOperationCount>());
}

}  // namespace kmsd
