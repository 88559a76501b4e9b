#include "policy/access.h"

#include <algorithm>
#include <string>

namespace kmsd {
namespace {

std::string Shown(std::string_view text) { return std::string(text.substr(0, 64)); }

}  // namespace

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
                               std::string_view tenant) const {
  if (principal != nullptr) return AuthorizePrincipal(*principal, op, permission, tenant);
  if (IsAdmin(peer)) return OkStatus();
  std::string message = "uid " + std::to_string(peer.uid) + " (gid " + std::to_string(peer.gid) +
                        ") may not call '" + Shown(op) + "'";
  if (!tenant.empty()) message += " in tenant '" + Shown(tenant) + "'";
  return Status(Code::kAccessDenied,
                message + ": not an admin of this kmsd, and the request carries no API key");
}

Status AccessPolicy::AuthorizePrincipal(const PrincipalIdentity& principal, std::string_view op,
                                        std::optional<Permission> permission,
                                        std::string_view tenant) const {
  const std::string who = "principal '" + principal.name + "' of tenant '" + principal.tenant + "'";
  if (!tenant.empty() && tenant != principal.tenant) {
    return Status(Code::kAccessDenied, who + " may not call '" + Shown(op) + "' in tenant '" +
                                           Shown(tenant) +
                                           "': a principal acts in its own tenant only");
  }
  if (!permission) return OkStatus();  // UNKNOWN_OPERATION follows
  if (!principal.permissions.test(static_cast<size_t>(*permission))) {
    return Status(Code::kAccessDenied, who + " may not call '" + Shown(op) +
                                           "': its roles lack the permission '" +
                                           std::string(PermissionName(*permission)) + "'");
  }
  return OkStatus();
}

}  // namespace kmsd
