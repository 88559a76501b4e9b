#include "policy/access.h"

#include <algorithm>
#include <string>

#include "protocol/names.h"

namespace kmsd {
namespace {

// True when a narrowed permission covers the key or alias.
bool Covers(const ScopedPermission& held, const ResourceFacts& facts) {
  if (held.scope == Scope::kKey) {
    return facts.kind == Resource::kKey &&
           (held.name == facts.name || (facts.key_id && held.name == KeyIdToHex(*facts.key_id)));
  }
  if (held.scope != Scope::kAlias) return false;
  if (facts.kind == Resource::kAlias) return held.name == facts.name;
  return std::find(facts.aliases.begin(), facts.aliases.end(), held.name) != facts.aliases.end();
}

}  // namespace

std::shared_ptr<const PrincipalAccess> AccessOf(const std::vector<std::string>& roles,
                                                const RoleCatalog& custom,
                                                std::vector<GrantRecord> grants) {
  auto access = std::make_shared<PrincipalAccess>();
  access->roles = Resolve(roles, custom);
  access->grants = std::move(grants);
  access->somewhere = access->roles.Anywhere();
  for (const GrantRecord& grant : access->grants) access->somewhere |= OperationsOf(grant);
  return access;
}

bool PeerSet::Contains(const Peer& peer) const {
  if (uids.contains(peer.uid) || gids.contains(peer.gid)) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(),
                     [&](uint64_t group) { return gids.contains(group); });
}

bool AccessPolicy::MayConnect(const Peer& peer) const {
  if (IsAdmin(peer) || options_.api_key_peers.Contains(peer)) return true;
  return options_.is_bound_peer && options_.is_bound_peer(peer);
}

Status AccessPolicy::Authorize(const Peer& peer, const PrincipalIdentity* principal,
                               std::string_view op, std::optional<Permission> permission,
                               std::string_view tenant, std::optional<Resource> resource,
                               bool* resource_pending) const {
  if (principal != nullptr) {
    return AuthorizePrincipal(*principal, op, permission, tenant, resource, resource_pending);
  }
  if (IsAdmin(peer)) return OkStatus();
  std::string message = "uid " + std::to_string(peer.uid) + " (gid " + std::to_string(peer.gid) +
                        ") may not call '" + ShownName(op) + "'";
  if (!tenant.empty()) message += " in tenant '" + ShownName(tenant) + "'";
  return Status(Code::kAccessDenied,
                message + ": not an admin of this kmsd, and the request carries no API key");
}

Status AccessPolicy::AuthorizePrincipal(const PrincipalIdentity& principal, std::string_view op,
                                        std::optional<Permission> permission,
                                        std::string_view tenant, std::optional<Resource> resource,
                                        bool* resource_pending) const {
  const std::string who = "principal '" + principal.name + "' of tenant '" + principal.tenant + "'";
  if (!tenant.empty() && tenant != principal.tenant) {
    return Status(Code::kAccessDenied, who + " may not call '" + ShownName(op) + "' in tenant '" +
                                           ShownName(tenant) +
                                           "': a principal acts in its own tenant only");
  }
  if (!permission) return OkStatus();  // UNKNOWN_OPERATION follows
  const size_t bit = static_cast<size_t>(*permission);
  if (principal.permissions.test(bit)) return OkStatus();
  const bool on_one = resource == Resource::kKey || resource == Resource::kAlias;
  if (on_one && principal.access != nullptr && resource_pending != nullptr &&
      principal.access->somewhere.test(bit)) {
    *resource_pending = true;
    return OkStatus();
  }
  return Status(Code::kAccessDenied, who + " may not call '" + ShownName(op) +
                                         "': its roles and grants lack the permission '" +
                                         std::string(PermissionName(*permission)) + "'");
}

Status AccessPolicy::AuthorizeResource(const PrincipalIdentity& principal, std::string_view op,
                                       Permission permission, const ResourceFacts& facts,
                                       int64_t now, std::string* grant_used) const {
  if (principal.permissions.test(static_cast<size_t>(permission))) return OkStatus();
  if (principal.access != nullptr) {
    for (const ScopedPermission& held : principal.access->roles.scoped) {
      if (held.permission == permission && Covers(held, facts)) return OkStatus();
    }
    if (facts.kind == Resource::kKey && facts.key_id) {
      for (const GrantRecord& grant : principal.access->grants) {
        if (GrantAllows(grant, permission, *facts.key_id, facts.context, now)) {
          if (grant_used != nullptr) *grant_used = grant.id;
          return OkStatus();
        }
      }
    }
  }
  return Status(Code::kAccessDenied, "principal '" + principal.name + "' of tenant '" +
                                         principal.tenant + "' may not call '" + ShownName(op) +
                                         "' on " + std::string(ResourceName(facts.kind)) + " '" +
                                         ShownName(facts.name) +
                                         "': no role or grant gives it the permission '" +
                                         std::string(PermissionName(permission)) + "' there");
}

}  // namespace kmsd
