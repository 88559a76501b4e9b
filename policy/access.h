// AccessPolicy: who may call which operation. Pure decisions, no I/O.
//
// In protocol v1 a peer is an admin when its uid or gid is listed; admins may
// do everything and every other peer is denied (tenant principals, roles and
// API keys come later). Immutable after Create; thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

// Who is on the other end of the socket, as the kernel reports it.
struct Peer {
  uint64_t uid = 0;
  uint64_t gid = 0;
  uint64_t pid = 0;
};

class AccessPolicy {
 public:
  AccessPolicy(std::set<uint64_t> admin_uids, std::set<uint64_t> admin_gids)
      : admin_uids_(std::move(admin_uids)), admin_gids_(std::move(admin_gids)) {}

  // OK or ACCESS_DENIED naming the peer and the op (never the request).
  Status Authorize(const Peer& peer, std::string_view op, std::string_view tenant) const;
  bool IsAdmin(const Peer& peer) const;

 private:
  std::set<uint64_t> admin_uids_;
  std::set<uint64_t> admin_gids_;
};

}  // namespace kmsd
