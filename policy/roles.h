// Roles: named sets of permissions (protocol/operations.h) that a tenant's
// principals hold (docs/POLICY.md, "Roles").
//
// The built-in roles of the seeds, for a tenant's principals:
//  - manager: the tenant's keys, aliases, principals, API keys, custom roles
//    and grants (create, read, rotate, enable/disable, schedule deletion;
//    tenant describe) but no cryptographic use of a key: who manages a key
//    need not be able to use it (separation of duties);
//  - user: the cryptographic operations (encrypt, decrypt, re-encrypt,
//    data keys, random) and the service's status;
//  - viewer: read only (describe and list of the tenant, its keys, aliases,
//    principals, API keys, roles and grants; never a secret).
// `admin` (everything, every tenant) is kept for the peers the config names
// admins; a tenant principal cannot hold it.
//
// A tenant's custom roles (keystore RoleRecord) inherit roles (built-in or
// custom) and add permission statements:
//
//   PERMISSION[@RESOURCE]
//   PERMISSION: a permission name ("crypto:encrypt"), a family ("crypto:*")
//               or "*" (every permission a tenant role may hold)
//   RESOURCE:   key/NAME or key/ID (one key, by name or 32-hex-digit id),
//               alias/NAME (the key an alias names, or the alias itself for
//               alias:manage), key/* (every key: the same as no resource)
//
// A resource narrows only permissions that act on one key or alias
// (key:read, key:rotate, key:manage, key:delete, the crypto permissions but
// generate-random, grant:manage, alias:manage). An alias resource covers the
// alias itself and the key it names at the time of the request. Pointing an
// alias at a key needs alias:manage on both. A role may not reach itself
// through what it inherits. Pure functions; thread-safe.
#pragma once

#include <bitset>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keystore/store.h"
#include "protocol/operations.h"
#include "protocol/status.h"

namespace kmsd {

using PermissionSet = std::bitset<kPermissionCount>;

inline constexpr std::string_view kAdminRole = "admin";
// Bounds of a custom role's definition.
inline constexpr size_t kMaxRoleInherits = 16;
inline constexpr size_t kMaxRoleStatements = 64;

// The built-in roles a tenant principal may hold, in documentation order.
std::span<const std::string_view> TenantRoleNames();

// The permissions of a built-in role; nullopt for a name that is none
// (admin included: it is not a tenant role).
std::optional<PermissionSet> TenantRolePermissions(std::string_view role);

// OK, or INVALID_ARGUMENT naming the first role that is neither built-in nor
// one of `custom` (and saying which are), an empty list, or a role given twice.
Status ValidateTenantRoles(const std::vector<std::string>& roles, const RoleCatalog& custom = {});

// The union of the built-in roles' permissions; other names add nothing.
PermissionSet PermissionsOf(const std::vector<std::string>& roles);

enum class Scope : uint8_t { kEverywhere, kKey, kAlias };

// A permission on every key and alias of the tenant, or on one of them.
struct ScopedPermission {
  Permission permission;
  Scope scope = Scope::kEverywhere;
  std::string name;  // the key's name or hex id, or "alias/NAME"; empty everywhere
  bool operator==(const ScopedPermission&) const = default;
};

// The permissions one statement gives; INVALID_ARGUMENT naming it.
Result<std::vector<ScopedPermission>> ParseStatement(std::string_view statement);

// What a set of roles gives.
struct EffectivePermissions {
  PermissionSet everywhere;
  std::vector<ScopedPermission> scoped;  // kKey or kAlias scopes only
  // Every permission held on something.
  PermissionSet Anywhere() const;
};

// OK or INVALID_ARGUMENT: a valid name that is not built-in or admin; at
// most kMaxRoleInherits inherited roles, each built-in or in `roles`, once;
// at most kMaxRoleStatements statements, each valid; something inherited or
// allowed; and no cycle (named as a path). `roles` holds the role itself
// when it is a change of an existing one.
Status ValidateCustomRole(const RoleRecord& role, const RoleCatalog& roles);

// `roles` and every role they inherit, directly or not (a cycle ends).
std::set<std::string, std::less<>> RolesReached(const std::vector<std::string>& roles,
                                                const RoleCatalog& custom);

// A narrowed permission written as a statement: "crypto:encrypt@key/orders".
std::string StatementOf(const ScopedPermission& permission);

// The permissions of `roles` with what the custom ones inherit.
EffectivePermissions Resolve(const std::vector<std::string>& roles, const RoleCatalog& custom);

}  // namespace kmsd
