// AccessPolicy: who may connect to kmsd and who may call which operation.
// Pure decisions, no I/O.
//
// In protocol v1 a peer is an admin when its uid, its primary gid or one of
// its supplementary groups is listed; admins may do everything and every other
// peer is denied (tenant principals, roles and API keys come later). MayConnect
// is the coarser question asked when a connection is made, before any byte of
// a request is read: today only admins may, the tenancy work will widen it.
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string_view>
#include <vector>

#include "os/peer_credentials.h"
#include "protocol/status.h"

namespace kmsd {

// Who is on the other end of the socket (os/peer_credentials.h).
using Peer = PeerCredentials;

class AccessPolicy {
 public:
  AccessPolicy(std::set<uint64_t> admin_uids, std::set<uint64_t> admin_gids)
      : admin_uids_(std::move(admin_uids)), admin_gids_(std::move(admin_gids)) {}

  // True if `peer` may open a connection at all; a peer refused here never
  // gets a request read.
  bool MayConnect(const Peer& peer) const;
  // OK or ACCESS_DENIED naming the peer and the op (never the request).
  Status Authorize(const Peer& peer, std::string_view op, std::string_view tenant) const;
  bool IsAdmin(const Peer& peer) const;

 private:
  std::set<uint64_t> admin_uids_;
  std::set<uint64_t> admin_gids_;
};

}  // namespace kmsd
