// Roles: named sets of permissions (protocol/operations.h) that a tenant's
// principals hold (docs/POLICY.md, "Roles").
//
// The built-in roles of the seeds, for a tenant's principals:
//  - manager: the tenant's keys, aliases, principals and API keys (create,
//    read, rotate, enable/disable, schedule deletion; tenant describe) but no
//    cryptographic use of a key: who manages a key need not be able to use it
//    (separation of duties);
//  - user: the cryptographic operations (encrypt, decrypt, re-encrypt,
//    data keys, random) and the service's status;
//  - viewer: read only (describe and list of the tenant, its keys, aliases,
//    principals and API keys; never a secret).
// `admin` (everything, every tenant) is kept for the peers the config names
// admins; a tenant principal cannot hold it. Pure functions; thread-safe.
#pragma once

#include <bitset>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/operations.h"
#include "protocol/status.h"

namespace kmsd {

using PermissionSet = std::bitset<kPermissionCount>;

inline constexpr std::string_view kAdminRole = "admin";

// The built-in roles a tenant principal may hold, in documentation order.
std::span<const std::string_view> TenantRoleNames();

// The permissions of a built-in role; nullopt for a name that is none
// (admin included: it is not a tenant role).
std::optional<PermissionSet> TenantRolePermissions(std::string_view role);

// OK, or INVALID_ARGUMENT naming the first role that is not a tenant role
// (and saying which are), an empty list, or a role given twice.
Status ValidateTenantRoles(const std::vector<std::string>& roles);

// The union of the roles' permissions; names that are not roles add nothing.
PermissionSet PermissionsOf(const std::vector<std::string>& roles);

}  // namespace kmsd
