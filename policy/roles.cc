#include "policy/roles.h"

#include <algorithm>
#include <array>
#include <initializer_list>

namespace kmsd {
namespace {

using P = Permission;

PermissionSet Of(std::initializer_list<Permission> permissions) {
  PermissionSet set;
  for (Permission p : permissions) set.set(static_cast<size_t>(p));
  return set;
}

const PermissionSet& Viewer() {
  static const PermissionSet kSet = Of({P::kServiceRead, P::kTenantRead, P::kKeyRead, P::kAliasRead,
                                        P::kPrincipalRead, P::kApiKeyRead});
  return kSet;
}

const PermissionSet& User() {
  static const PermissionSet kSet =
      Of({P::kServiceRead, P::kEncrypt, P::kDecrypt, P::kReEncryptFrom, P::kReEncryptTo,
          P::kGenerateDataKey, P::kGenerateRandom});
  return kSet;
}

const PermissionSet& Manager() {
  static const PermissionSet kSet =
      Viewer() | Of({P::kKeyCreate, P::kKeyRotate, P::kKeyManage, P::kKeyDelete, P::kAliasManage,
                     P::kPrincipalManage, P::kApiKeyManage});
  return kSet;
}

constexpr std::array<std::string_view, 3> kTenantRoles = {"manager", "user", "viewer"};

}  // namespace

std::span<const std::string_view> TenantRoleNames() { return kTenantRoles; }

std::optional<PermissionSet> TenantRolePermissions(std::string_view role) {
  if (role == "manager") return Manager();
  if (role == "user") return User();
  if (role == "viewer") return Viewer();
  return std::nullopt;
}

Status ValidateTenantRoles(const std::vector<std::string>& roles) {
  if (roles.empty()) return Status(Code::kInvalidArgument, "a principal needs at least one role");
  for (size_t i = 0; i < roles.size(); ++i) {
    const std::string& role = roles[i];
    if (!TenantRolePermissions(role)) {
      std::string known;
      for (std::string_view name : kTenantRoles)
        known += (known.empty() ? "" : ", ") + std::string(name);
      const std::string shown = role.substr(0, 64);
      if (role == kAdminRole) {
        return Status(Code::kInvalidArgument,
                      "role 'admin' is not a tenant role: admins are the peers kmsd's config "
                      "names; a tenant principal may hold " +
                          known);
      }
      return Status(Code::kInvalidArgument,
                    "unknown role '" + shown + "': a tenant principal may hold " + known);
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

}  // namespace kmsd
