#include "policy/access.h"

#include <algorithm>
#include <string>

namespace kmsd {

bool AccessPolicy::IsAdmin(const Peer& peer) const {
  if (admin_uids_.contains(peer.uid) || admin_gids_.contains(peer.gid)) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(),
                     [&](uint64_t group) { return admin_gids_.contains(group); });
}

bool AccessPolicy::MayConnect(const Peer& peer) const { return IsAdmin(peer); }

Status AccessPolicy::Authorize(const Peer& peer, std::string_view op,
                               std::string_view tenant) const {
  if (IsAdmin(peer)) return OkStatus();
  std::string message = "uid " + std::to_string(peer.uid) + " (gid " + std::to_string(peer.gid) +
                        ") may not call '" + std::string(op.substr(0, 64)) + "'";
  if (!tenant.empty()) message += " in tenant '" + std::string(tenant.substr(0, 64)) + "'";
  return Status(Code::kAccessDenied, message + ": not an admin of this kmsd");
}

}  // namespace kmsd
