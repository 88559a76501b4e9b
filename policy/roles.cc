#include "policy/roles.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <set>

#include "protocol/names.h"

namespace kmsd {
namespace {

using P = Permission;

PermissionSet Of(std::initializer_list<Permission> permissions) {
  PermissionSet set;
  for (Permission p : permissions) set.set(static_cast<size_t>(p));
  return set;
}

const PermissionSet& Viewer() {
  static const PermissionSet kSet =
      Of({P::kServiceRead, P::kTenantRead, P::kKeyRead, P::kAliasRead, P::kPrincipalRead,
          P::kApiKeyRead, P::kRoleRead, P::kGrantRead, P::kPolicyRead, P::kSessionLogin,
          P::kSessionRead});
  return kSet;
}

const PermissionSet& User() {
  static const PermissionSet kSet =
      Of({P::kServiceRead, P::kTenantRead, P::kEncrypt, P::kDecrypt, P::kReEncryptFrom,
          P::kReEncryptTo, P::kGenerateDataKey, P::kGenerateRandom, P::kSessionLogin});
  return kSet;
}

const PermissionSet& Manager() {
  static const PermissionSet kSet =
      Viewer() | Of({P::kKeyCreate, P::kKeyRotate, P::kKeyManage, P::kKeyDelete, P::kAliasManage,
                     P::kPrincipalManage, P::kApiKeyManage, P::kRoleManage, P::kGrantManage,
                     P::kPolicyManage, P::kSessionManage, P::kMfaManage, P::kAuditRead});
  return kSet;
}

// What a tenant role may hold at most: "*" in a statement.
const PermissionSet& AnyTenantRole() {
  static const PermissionSet kSet = Manager() | User();
  return kSet;
}

constexpr std::array<std::string_view, 3> kTenantRoles = {"manager", "user", "viewer"};

std::string KnownRoles(const RoleCatalog& custom) {
  std::string known;
  for (std::string_view name : kTenantRoles)
    known += (known.empty() ? "" : ", ") + std::string(name);
  for (const auto& [name, role] : custom) known += ", " + name;
  return known;
}

// True when `p` may be narrowed to one resource of `scope`. A key's
// permissions may be narrowed to the key an alias names too; alias:manage to
// an alias, or to the key an alias is pointed at.
bool Fits(Permission p, Scope scope) {
  switch (p) {
    case P::kKeyRead:
    case P::kKeyRotate:
    case P::kKeyManage:
    case P::kKeyDelete:
    case P::kEncrypt:
    case P::kDecrypt:
    case P::kReEncryptFrom:
    case P::kReEncryptTo:
    case P::kGenerateDataKey:
    case P::kGrantManage:
    case P::kAliasManage:
      return true;
    default:
      return scope == Scope::kEverywhere;
  }
}

bool IsKeyIdHex(std::string_view text) {
  return text.size() == 32 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Status BadStatement(std::string_view statement, const std::string& why) {
  return Status(Code::kInvalidArgument,
                "permission statement '" + ShownName(statement) + "' is not valid: " + why);
}

// The permissions PERMISSION names, within what a tenant role may hold.
Result<PermissionSet> PermissionsNamed(std::string_view statement, std::string_view name) {
  if (name == "*") return AnyTenantRole();
  if (name.ends_with(":*")) {
    const std::string_view family = name.substr(0, name.size() - 1);  // "crypto:"
    PermissionSet set;
    for (size_t i = 0; i < kPermissionCount; ++i) {
      if (AnyTenantRole().test(i) && PermissionName(static_cast<P>(i)).starts_with(family)) {
        set.set(i);
      }
    }
    if (set.none()) return Error(BadStatement(statement, "no tenant permission is named so"));
    return set;
  }
  const std::optional<Permission> permission = PermissionNamed(name);
  if (!permission) return Error(BadStatement(statement, "unknown permission"));
  if (!AnyTenantRole().test(static_cast<size_t>(*permission))) {
    return Error(BadStatement(statement, "only admins hold that permission"));
  }
  return Of({*permission});
}

// The scope and name RESOURCE names.
Result<std::pair<Scope, std::string>> ResourceNamed(std::string_view statement,
                                                    std::string_view resource) {
  if (resource == "key/*") return std::pair{Scope::kEverywhere, std::string()};
  if (resource.starts_with("key/")) {
    const std::string_view key = resource.substr(4);
    if (!IsKeyIdHex(key) && !ValidateKeyName(key).ok()) {
      return Error(BadStatement(statement, "key/ needs a key name or id"));
    }
    return std::pair{Scope::kKey, std::string(key)};
  }
  if (resource.starts_with(kAliasPrefix)) {
    if (!ValidateAliasName(resource).ok()) {
      return Error(BadStatement(statement, "alias/ needs an alias name"));
    }
    return std::pair{Scope::kAlias, std::string(resource)};
  }
  return Error(BadStatement(statement, "a resource is key/NAME, key/ID, alias/NAME or key/*"));
}

// Every custom role `role` inherits, depth first; `path` leads to it. The
// first cycle found is returned as its path.
std::optional<std::string> FindCycle(const std::string& role, const RoleCatalog& roles,
                                     std::vector<std::string>& path) {
  if (std::find(path.begin(), path.end(), role) != path.end()) {
    std::string cycle;
    for (const std::string& step : path) cycle += step + " -> ";
    return cycle + role;
  }
  auto it = roles.find(role);
  if (it == roles.end()) return std::nullopt;  // built-in
  path.push_back(role);
  for (const std::string& parent : it->second.inherits) {
    if (auto cycle = FindCycle(parent, roles, path)) return cycle;
  }
  path.pop_back();
  return std::nullopt;
}

}  // namespace

std::span<const std::string_view> TenantRoleNames() { return kTenantRoles; }

std::optional<PermissionSet> TenantRolePermissions(std::string_view role) {
  if (role == "manager") return Manager();
  if (role == "user") return User();
  if (role == "viewer") return Viewer();
  return std::nullopt;
}

Status ValidateTenantRoles(const std::vector<std::string>& roles, const RoleCatalog& custom) {
  if (roles.empty()) return Status(Code::kInvalidArgument, "a principal needs at least one role");
  for (size_t i = 0; i < roles.size(); ++i) {
    const std::string& role = roles[i];
    if (!TenantRolePermissions(role) && !custom.contains(role)) {
      if (role == kAdminRole) {
        return Status(Code::kInvalidArgument,
                      "role 'admin' is not a tenant role: admins are the peers kmsd's config "
                      "names; a tenant principal may hold " +
                          KnownRoles(custom));
      }
      return Status(Code::kInvalidArgument, "unknown role '" + ShownName(role) +
                                                "': a tenant principal may hold " +
                                                KnownRoles(custom));
    }
    if (std::find(roles.begin(), roles.begin() + static_cast<std::ptrdiff_t>(i), role) !=
        roles.begin() + static_cast<std::ptrdiff_t>(i)) {
      return Status(Code::kInvalidArgument, "role '" + role + "' is given twice");
    }
  }
  return OkStatus();
}

PermissionSet PermissionsOf(const std::vector<std::string>& roles) {
  PermissionSet set;
  for (const std::string& role : roles) {
    if (auto permissions = TenantRolePermissions(role)) set |= *permissions;
  }
  return set;
}

Result<std::vector<ScopedPermission>> ParseStatement(std::string_view statement) {
  const size_t at = statement.find('@');
  const std::string_view name = statement.substr(0, at);
  ASSIGN_OR_RETURN(PermissionSet permissions, PermissionsNamed(statement, name));
  Scope scope = Scope::kEverywhere;
  std::string resource;
  if (at != std::string_view::npos) {
    ASSIGN_OR_RETURN(auto named, ResourceNamed(statement, statement.substr(at + 1)));
    std::tie(scope, resource) = std::move(named);
  }
  std::vector<ScopedPermission> out;
  for (size_t i = 0; i < kPermissionCount; ++i) {
    if (!permissions.test(i)) continue;
    const auto permission = static_cast<P>(i);
    if (!Fits(permission, scope)) {
      if (permissions.count() == 1) {
        return Error(BadStatement(statement, "'" + std::string(PermissionName(permission)) +
                                                 "' does not act on one key or alias"));
      }
      continue;  // a family: its members that fit
    }
    out.push_back({.permission = permission, .scope = scope, .name = resource});
  }
  if (out.empty())
    return Error(BadStatement(statement, "none of its permissions fits that resource"));
  return out;
}

PermissionSet EffectivePermissions::Anywhere() const {
  PermissionSet set = everywhere;
  for (const ScopedPermission& p : scoped) set.set(static_cast<size_t>(p.permission));
  return set;
}

Status ValidateCustomRole(const RoleRecord& role, const RoleCatalog& roles) {
  RETURN_IF_ERROR(ValidateRoleName(role.name));
  if (TenantRolePermissions(role.name) || role.name == kAdminRole) {
    return Status(Code::kInvalidArgument,
                  "role '" + role.name + "' is built in: a custom role needs another name");
  }
  if (role.inherits.empty() && role.allow.empty()) {
    return Status(Code::kInvalidArgument,
                  "role '" + role.name + "' inherits nothing and allows nothing");
  }
  if (role.inherits.size() > kMaxRoleInherits || role.allow.size() > kMaxRoleStatements) {
    return Status(Code::kInvalidArgument, "a role inherits at most " +
                                              std::to_string(kMaxRoleInherits) +
                                              " roles and allows at most " +
                                              std::to_string(kMaxRoleStatements) + " statements");
  }
  for (size_t i = 0; i < role.inherits.size(); ++i) {
    const std::string& parent = role.inherits[i];
    if (parent == kAdminRole) {
      return Status(Code::kInvalidArgument, "a tenant role may not inherit 'admin'");
    }
    if (!TenantRolePermissions(parent) && !roles.contains(parent)) {
      return Status(Code::kInvalidArgument, "role '" + role.name + "' inherits unknown role '" +
                                                ShownName(parent) + "': known are " +
                                                KnownRoles(roles));
    }
    if (std::count(role.inherits.begin(), role.inherits.end(), parent) > 1) {
      return Status(Code::kInvalidArgument, "role '" + parent + "' is inherited twice");
    }
  }
  for (const std::string& statement : role.allow) {
    RETURN_IF_ERROR(StatusOf(ParseStatement(statement)));
  }
  std::vector<std::string> path;
  if (auto cycle = FindCycle(role.name, roles, path)) {
    return Status(Code::kInvalidArgument,
                  "role '" + role.name + "' would inherit itself: " + *cycle);
  }
  return OkStatus();
}

std::set<std::string, std::less<>> RolesReached(const std::vector<std::string>& roles,
                                                const RoleCatalog& custom) {
  std::set<std::string, std::less<>> reached;
  std::vector<std::string> pending = roles;
  while (!pending.empty()) {
    std::string role = std::move(pending.back());
    pending.pop_back();
    if (auto it = custom.find(role); reached.insert(role).second && it != custom.end()) {
      pending.insert(pending.end(), it->second.inherits.begin(), it->second.inherits.end());
    }
  }
  return reached;
}

std::string StatementOf(const ScopedPermission& p) {
  std::string statement(PermissionName(p.permission));
  if (p.scope == Scope::kKey) statement += "@key/" + p.name;
  if (p.scope == Scope::kAlias) statement += "@" + p.name;
  return statement;
}

EffectivePermissions Resolve(const std::vector<std::string>& roles, const RoleCatalog& custom) {
  EffectivePermissions out;
  for (const std::string& role : RolesReached(roles, custom)) {
    if (auto permissions = TenantRolePermissions(role)) {
      out.everywhere |= *permissions;
      continue;
    }
    auto it = custom.find(role);
    if (it == custom.end()) continue;
    for (const std::string& statement : it->second.allow) {
      auto parsed = ParseStatement(statement);
      if (!parsed) continue;  // validated when written
      for (ScopedPermission& p : *parsed) {
        if (p.scope == Scope::kEverywhere) {
          out.everywhere.set(static_cast<size_t>(p.permission));
        } else {
          out.scoped.push_back(std::move(p));
        }
      }
    }
  }
  // Narrowed permissions also held everywhere add nothing.
  std::erase_if(out.scoped, [&](const ScopedPermission& p) {
    return out.everywhere.test(static_cast<size_t>(p.permission));
  });
  return out;
}

}  // namespace kmsd
