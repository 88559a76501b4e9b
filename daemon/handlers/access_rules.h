// Rules the access handlers share (access.cc: principals and API keys;
// roles_grants.cc: custom roles and grants).
//
// No escalation: a principal may give (through roles it assigns or defines,
// or API keys it creates) only permissions it holds everywhere in its tenant
// itself; admins may give anything. Thread-safe as the directory is.
#pragma once

#include <string>

#include "daemon/handlers/handler.h"
#include "keystore/access_directory.h"
#include "policy/roles.h"

namespace kmsd {

inline AccessDirectory& Directory(Call& call) { return call.hierarchy().access(); }
inline int64_t Now(Call& call) { return Directory(call).Now(); }

// ACCESS_DENIED unless the calling principal (an admin always may) holds
// every permission of `given` everywhere: `what` says what it tried.
inline Status CheckNoEscalation(Call& call, const PermissionSet& given, const std::string& what) {
  const PrincipalIdentity* caller = call.principal();
  if (caller == nullptr) return OkStatus();
  const PermissionSet beyond = given & ~caller->permissions;
  for (size_t i = 0; i < kPermissionCount; ++i) {
    if (!beyond.test(i)) continue;
    return Status(Code::kAccessDenied, "principal '" + caller->name + "' may not " + what +
                                           ": that gives the permission '" +
                                           std::string(PermissionName(static_cast<Permission>(i))) +
                                           "', which it does not hold everywhere itself");
  }
  return OkStatus();
}

// The same for acting as principal `target` (an API key of it, its TOTP
// seed): the calling principal must hold everything `target`'s roles and
// grants give. NOT_FOUND when there is no such principal.
Status CheckMayActAs(Call& call, std::string_view target, const std::string& what);

}  // namespace kmsd
