// Grants (docs/POLICY.md, "Grants"), as in AWS KMS: a grant lets one
// principal of a tenant do some operations with one key, optionally only
// while the request's encryption context holds given pairs, until it expires
// or is retired. Its operations are named:
//
//   encrypt, decrypt, re-encrypt-from, re-encrypt-to, generate-data-key
//   (both forms), describe-key
//
// each the permission of protocol/operations.h it gives on that key. Pure
// functions; thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keystore/store.h"
#include "policy/roles.h"
#include "protocol/ciphertext.h"

namespace kmsd {

// Bounds of a grant.
inline constexpr size_t kMaxGrantConstraints = 8;
inline constexpr int64_t kMaxGrantLifetimeSeconds = 3650 * 86400;

std::span<const std::string_view> GrantOperationNames();
// The permission an operation name gives; nullopt for a name that is none.
std::optional<Permission> GrantOperationPermission(std::string_view operation);
// OK, or INVALID_ARGUMENT for an empty list, an unknown name (saying which
// are known) or a name given twice.
Status ValidateGrantOperations(const std::vector<std::string>& operations);
// OK, or INVALID_ARGUMENT for more than kMaxGrantConstraints pairs or a pair
// an encryption context could not hold.
Status ValidateGrantConstraints(const EncryptionContext& constraints);

enum class GrantState { kActive, kRetired, kExpired };
// "active", "retired", "expired".
std::string_view GrantStateName(GrantState state);
GrantState StateOf(const GrantRecord& grant, int64_t now);

// The permissions a grant's operations name, whatever its state.
PermissionSet OperationsOf(const GrantRecord& grant);
// The permissions of an active grant's operations (none once it is not).
PermissionSet PermissionsOf(const GrantRecord& grant, int64_t now);

// True when `grant` lets its principal use `permission` on key `key_id` with
// `context` (nullptr: no context, which satisfies only a grant without
// constraints) at `now`.
bool GrantAllows(const GrantRecord& grant, Permission permission, const KeyId& key_id,
                 const EncryptionContext* context, int64_t now);

}  // namespace kmsd
