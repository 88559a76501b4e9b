// AccessPolicy: who may connect to kmsd and who may call which operation.
// Pure decisions, no I/O.
//
// Callers are peers (the kernel's uid, gid, groups and pid of the socket's
// other end) and, when the request carries an API key, the tenant principal
// that key belongs to (daemon's identify stage). The rules:
//  - A peer is an admin when its uid, its primary gid or one of its
//    supplementary groups is listed among the config's admins. An admin
//    without an API key may do everything, in every tenant.
//  - A request with an API key is the key's principal's, whoever the peer:
//    the principal's roles (policy/roles.h) must hold the operation's
//    permission, and the request's tenant must be the principal's own.
//    For an operation on a key or alias, a permission the principal holds
//    on some keys or aliases only (a narrowed statement of a custom role, or
//    a grant, policy/grants.h) lets the request in with the resource check
//    pending: the execute stage asks AuthorizeResource() once it knows the
//    key or alias (and, for a grant, the request's encryption context).
//    Service operations that take no tenant are allowed when a role holds
//    their permission (status, health, random). A denial names the
//    principal, the operation and the missing permission, and says nothing
//    about other tenants or their objects.
//  - Any other peer is denied.
// MayConnect is the coarser question asked when a connection is made, before
// any byte of a request is read: admins, peers the config allows to present
// API keys, and peers a principal is bound to (the `is_bound_peer` question,
// answered from the principals of the moment). Immutable after
// construction; thread-safe when `is_bound_peer` is.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "os/peer_credentials.h"
#include "policy/grants.h"
#include "policy/roles.h"
#include "protocol/status.h"

namespace kmsd {

// Who is on the other end of the socket (os/peer_credentials.h).
using Peer = PeerCredentials;

// A set of peers named by uid, or by gid (primary or supplementary).
struct PeerSet {
  std::set<uint64_t> uids;
  std::set<uint64_t> gids;
  bool Contains(const Peer& peer) const;
  bool empty() const { return uids.empty() && gids.empty(); }
};

// What a principal holds beyond its permissions everywhere: its roles'
// narrowed statements and its grants (retired ones left out), and every
// permission either gives on some key or alias (`somewhere`: the intake's
// question; a grant's expiry is checked with the resource).
struct PrincipalAccess {
  EffectivePermissions roles;
  std::vector<GrantRecord> grants;
  PermissionSet somewhere;
};

// Derives a principal's access from its roles, its tenant's custom roles and
// its grants.
std::shared_ptr<const PrincipalAccess> AccessOf(const std::vector<std::string>& roles,
                                                const RoleCatalog& custom,
                                                std::vector<GrantRecord> grants);

// The tenant principal a request was identified as.
struct PrincipalIdentity {
  std::string tenant;
  std::string name;
  std::string api_key_id;
  std::string session_id;                         // set when the request came with a session token
  bool mfa = false;                               // that session was opened with a TOTP code
  PermissionSet permissions;                      // everywhere in its tenant
  std::shared_ptr<const PrincipalAccess> access;  // may be null: nothing more
};

// The key or alias a request acts on, as the execute stage found it.
struct ResourceFacts {
  Resource kind = Resource::kKey;        // kKey or kAlias
  std::string_view name;                 // the key's name, or the alias ("alias/...")
  std::optional<KeyId> key_id;           // a key's id
  std::span<const std::string> aliases;  // a key's aliases
  // The request's encryption context, for grants with constraints.
  const EncryptionContext* context = nullptr;
};

struct AccessPolicyOptions {
  PeerSet admins;
  // Peers that may connect to present an API key (besides admins and the
  // peers principals are bound to).
  PeerSet api_key_peers;
  // True when some principal is bound to the peer; absent: none is.
  std::function<bool(const Peer&)> is_bound_peer;
};

class AccessPolicy {
 public:
  explicit AccessPolicy(AccessPolicyOptions options) : options_(std::move(options)) {}
  AccessPolicy(std::set<uint64_t> admin_uids, std::set<uint64_t> admin_gids)
      : AccessPolicy(AccessPolicyOptions{.admins = {std::move(admin_uids), std::move(admin_gids)},
                                         .api_key_peers = {},
                                         .is_bound_peer = {}}) {}

  // True if `peer` may open a connection at all; a peer refused here never
  // gets a request read.
  bool MayConnect(const Peer& peer) const;
  // OK or ACCESS_DENIED. `permission` is the operation's (nullopt for an op
  // that does not exist: a caller who may call something hears
  // UNKNOWN_OPERATION later, anyone else ACCESS_DENIED now).
  Status Authorize(const Peer& peer, const PrincipalIdentity* principal, std::string_view op,
                   std::optional<Permission> permission, std::string_view tenant) const {
    return Authorize(peer, principal, op, permission, tenant, std::nullopt, nullptr);
  }
  // As above for an operation acting on `resource`: `resource_pending` is set
  // when the principal may do it on some keys or aliases only.
  Status Authorize(const Peer& peer, const PrincipalIdentity* principal, std::string_view op,
                   std::optional<Permission> permission, std::string_view tenant,
                   std::optional<Resource> resource, bool* resource_pending) const;
  // OK or ACCESS_DENIED for `principal` to use `permission` on one key or
  // alias at `now` (seconds). When a grant (and no role) lets it in, its id
  // goes to `grant_used` (if given).
  Status AuthorizeResource(const PrincipalIdentity& principal, std::string_view op,
                           Permission permission, const ResourceFacts& facts, int64_t now,
                           std::string* grant_used = nullptr) const;
  bool IsAdmin(const Peer& peer) const { return options_.admins.Contains(peer); }

 private:
  Status AuthorizePrincipal(const PrincipalIdentity& principal, std::string_view op,
                            std::optional<Permission> permission, std::string_view tenant,
                            std::optional<Resource> resource, bool* resource_pending) const;

  AccessPolicyOptions options_;
};

}  // namespace kmsd
