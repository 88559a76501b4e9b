#include "protocol/names.h"

#include <string>

namespace kmsd {
namespace {

bool IsNameShape(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name.front())) return false;
  for (char c : name) {
    if (!lower_or_digit(c) && c != '-') return false;
  }
  return true;
}

// Names can be hostile; never echo more than a bounded, printable prefix.
std::string Printable(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (name.size() > 64) out += "...";
  return out;
}

Status CheckShape(std::string_view what, std::string_view name) {
  if (IsNameShape(name)) return OkStatus();
  return Status(Code::kInvalidArgument,
                std::string(what) + " '" + Printable(name) +
                    "' is not valid: use 1-63 of [a-z0-9-], starting with a letter or digit");
}

}  // namespace

Status ValidateTenantName(std::string_view name) { return CheckShape("tenant name", name); }
Status ValidateKeyName(std::string_view name) { return CheckShape("key name", name); }
Status ValidatePrincipalName(std::string_view name) { return CheckShape("principal name", name); }
Status ValidateRoleName(std::string_view name) { return CheckShape("role name", name); }

Status ValidateAliasName(std::string_view name) {
  if (!IsAliasReference(name)) {
    return Status(Code::kInvalidArgument,
                  "alias name '" + Printable(name) + "' must start with 'alias/'");
  }
  return CheckShape("alias name", name.substr(kAliasPrefix.size()));
}

bool IsAliasReference(std::string_view ref) { return ref.starts_with(kAliasPrefix); }

Status ValidateKeyReference(std::string_view ref) {
  return IsAliasReference(ref) ? ValidateAliasName(ref) : ValidateKeyName(ref);
}

std::string ShownName(std::string_view name) { return std::string(name.substr(0, 64)); }

}  // namespace kmsd
