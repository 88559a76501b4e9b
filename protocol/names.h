// Names of tenants, keys, aliases, principals and roles, and how requests
// refer to keys.
//
// Tenant, key, principal and role names: ^[a-z0-9][a-z0-9-]{0,62}$ (1 to 63 characters, lower
// case letters, digits and '-', not starting with '-'). Alias names are
// "alias/" followed by a name of the same shape. A key reference in a request
// is either a key name or an alias name. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

inline constexpr std::string_view kAliasPrefix = "alias/";

Status ValidateTenantName(std::string_view name);
Status ValidateKeyName(std::string_view name);
Status ValidateAliasName(std::string_view name);
Status ValidatePrincipalName(std::string_view name);
Status ValidateRoleName(std::string_view name);
// A key name or an alias name.
Status ValidateKeyReference(std::string_view ref);
bool IsAliasReference(std::string_view ref);

// A name as an error message shows it: at most its first 64 bytes (names
// come from callers and can be long).
std::string ShownName(std::string_view name);

}  // namespace kmsd
