#include "policy/grants.h"

#include <algorithm>
#include <array>
#include <utility>

namespace kmsd {
namespace {

using P = Permission;

constexpr std::array<std::pair<std::string_view, Permission>, 6> kOperations = {{
    {"encrypt", P::kEncrypt},
    {"decrypt", P::kDecrypt},
    {"re-encrypt-from", P::kReEncryptFrom},
    {"re-encrypt-to", P::kReEncryptTo},
    {"generate-data-key", P::kGenerateDataKey},
    {"describe-key", P::kKeyRead},
}};

constexpr std::array<std::string_view, 6> kNames = {kOperations[0].first, kOperations[1].first,
                                                    kOperations[2].first, kOperations[3].first,
                                                    kOperations[4].first, kOperations[5].first};

}  // namespace

std::span<const std::string_view> GrantOperationNames() { return kNames; }

std::optional<Permission> GrantOperationPermission(std::string_view operation) {
  for (const auto& [name, permission] : kOperations) {
    if (name == operation) return permission;
  }
  return std::nullopt;
}

Status ValidateGrantOperations(const std::vector<std::string>& operations) {
  if (operations.empty()) {
    return Status(Code::kInvalidArgument, "a grant needs at least one operation");
  }
  for (size_t i = 0; i < operations.size(); ++i) {
    const std::string& operation = operations[i];
    if (!GrantOperationPermission(operation)) {
      std::string known;
      for (std::string_view name : kNames) known += (known.empty() ? "" : ", ") + std::string(name);
      return Status(Code::kInvalidArgument, "unknown grant operation '" + operation.substr(0, 64) +
                                                "': known are " + known);
    }
    if (std::count(operations.begin(), operations.end(), operation) > 1) {
      return Status(Code::kInvalidArgument, "grant operation '" + operation + "' is given twice");
    }
  }
  return OkStatus();
}

Status ValidateGrantConstraints(const EncryptionContext& constraints) {
  if (constraints.size() > kMaxGrantConstraints) {
    return Status(Code::kInvalidArgument, "a grant has at most " +
                                              std::to_string(kMaxGrantConstraints) +
                                              " encryption-context constraints");
  }
  return ValidateEncryptionContext(constraints);
}

std::string_view GrantStateName(GrantState state) {
  switch (state) {
    case GrantState::kActive:
      return "active";
    case GrantState::kRetired:
      return "retired";
    case GrantState::kExpired:
      return "expired";
  }
  return "unknown";
}

GrantState StateOf(const GrantRecord& grant, int64_t now) {
  if (grant.retired_at) return GrantState::kRetired;
  if (grant.expires_at && *grant.expires_at <= now) return GrantState::kExpired;
  return GrantState::kActive;
}

PermissionSet OperationsOf(const GrantRecord& grant) {
  PermissionSet set;
  for (const std::string& operation : grant.operations) {
    if (auto permission = GrantOperationPermission(operation)) {
      set.set(static_cast<size_t>(*permission));
    }
  }
  return set;
}

PermissionSet PermissionsOf(const GrantRecord& grant, int64_t now) {
  if (StateOf(grant, now) != GrantState::kActive) return {};
  return OperationsOf(grant);
}

bool GrantAllows(const GrantRecord& grant, Permission permission, const KeyId& key_id,
                 const EncryptionContext* context, int64_t now) {
  if (grant.key_id != key_id) return false;
  if (!PermissionsOf(grant, now).test(static_cast<size_t>(permission))) return false;
  if (grant.context.empty()) return true;
  if (context == nullptr) return false;
  return std::all_of(grant.context.begin(), grant.context.end(), [&](const auto& pair) {
    auto it = context->find(pair.first);
    return it != context->end() && it->second == pair.second;
  });
}

}  // namespace kmsd
