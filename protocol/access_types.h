// Requests and replies of the access operations: a tenant's principals and
// their API keys (docs/PROTOCOL.md, "Principals and API keys"). Same rules as
// protocol/operation_types.h, of which this is the second half: each
// operation is a type (ops::PrincipalCreate), its fields listed once with
// their wire names. An API key's secret travels only in apikey.create's
// reply, as a SecretBuffer. Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/operation_types.h"

namespace kmsd {

namespace wire {
inline constexpr std::string_view kApiKeys = "api_keys";
inline constexpr std::string_view kExpiresAt = "expires_at";
inline constexpr std::string_view kExpiresInSeconds = "expires_in_seconds";
inline constexpr std::string_view kGids = "gids";
inline constexpr std::string_view kLastUsedAt = "last_used_at";
inline constexpr std::string_view kPrincipal = "principal";
inline constexpr std::string_view kPrincipals = "principals";
inline constexpr std::string_view kRevokedAt = "revoked_at";
inline constexpr std::string_view kRoles = "roles";
inline constexpr std::string_view kSecret = "secret";
inline constexpr std::string_view kUids = "uids";
}  // namespace wire

namespace ops {

struct PrincipalArg {
  std::string_view name;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &PrincipalArg::name}};
};

struct PrincipalCreateRequest {
  std::string_view name;
  std::vector<std::string> roles;
  // Peers the principal is accepted from (absent: any peer that may connect).
  std::optional<std::vector<uint64_t>> uids;
  std::optional<std::vector<uint64_t>> gids;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &PrincipalCreateRequest::name},
                                             Field{wire::kRoles, &PrincipalCreateRequest::roles},
                                             Field{wire::kUids, &PrincipalCreateRequest::uids},
                                             Field{wire::kGids, &PrincipalCreateRequest::gids}};
};

struct PrincipalSetRolesRequest {
  std::string_view name;
  std::vector<std::string> roles;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &PrincipalSetRolesRequest::name},
                                             Field{wire::kRoles, &PrincipalSetRolesRequest::roles}};
};

struct PrincipalDescription {
  std::string tenant;
  std::string name;
  std::vector<std::string> roles;
  std::vector<uint64_t> uids;
  std::vector<uint64_t> gids;
  int64_t created_at = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kTenant, &PrincipalDescription::tenant},
                 Field{wire::kName, &PrincipalDescription::name},
                 Field{wire::kRoles, &PrincipalDescription::roles},
                 Field{wire::kUids, &PrincipalDescription::uids},
                 Field{wire::kGids, &PrincipalDescription::gids},
                 Field{wire::kCreatedAt, &PrincipalDescription::created_at}};
};

struct PrincipalListReply {
  std::vector<PrincipalDescription> principals;
  static constexpr auto kFields =
      std::tuple{Field{wire::kPrincipals, &PrincipalListReply::principals}};
};

struct ApiKeyCreateRequest {
  std::string_view principal;
  // Absent: the key never expires.
  std::optional<uint64_t> expires_in_seconds;
  static constexpr auto kFields =
      std::tuple{Field{wire::kPrincipal, &ApiKeyCreateRequest::principal},
                 Field{wire::kExpiresInSeconds, &ApiKeyCreateRequest::expires_in_seconds}};
};

struct ApiKeyArg {
  std::string_view id;
  static constexpr auto kFields = std::tuple{Field{wire::kId, &ApiKeyArg::id}};
};

struct ApiKeyListRequest {
  std::optional<std::string_view> principal;  // absent: every principal's
  static constexpr auto kFields =
      std::tuple{Field{wire::kPrincipal, &ApiKeyListRequest::principal}};
};

// Never the secret.
struct ApiKeyDescription {
  std::string id;
  std::string tenant;
  std::string principal;
  std::string state;  // active, revoked, expired
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> revoked_at;
  std::optional<int64_t> last_used_at;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &ApiKeyDescription::id},
                 Field{wire::kTenant, &ApiKeyDescription::tenant},
                 Field{wire::kPrincipal, &ApiKeyDescription::principal},
                 Field{wire::kState, &ApiKeyDescription::state},
                 Field{wire::kCreatedAt, &ApiKeyDescription::created_at},
                 Field{wire::kExpiresAt, &ApiKeyDescription::expires_at},
                 Field{wire::kRevokedAt, &ApiKeyDescription::revoked_at},
                 Field{wire::kLastUsedAt, &ApiKeyDescription::last_used_at}};
};

// The one reply that carries the secret; it is never shown again.
struct ApiKeyCreateReply : ApiKeyDescription {
  SecretBuffer secret;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &ApiKeyCreateReply::id},
                 Field{wire::kTenant, &ApiKeyCreateReply::tenant},
                 Field{wire::kPrincipal, &ApiKeyCreateReply::principal},
                 Field{wire::kState, &ApiKeyCreateReply::state},
                 Field{wire::kCreatedAt, &ApiKeyCreateReply::created_at},
                 Field{wire::kExpiresAt, &ApiKeyCreateReply::expires_at},
                 Field{wire::kRevokedAt, &ApiKeyCreateReply::revoked_at},
                 Field{wire::kLastUsedAt, &ApiKeyCreateReply::last_used_at},
                 Field{wire::kSecret, &ApiKeyCreateReply::secret}};
};

struct ApiKeyListReply {
  std::vector<ApiKeyDescription> api_keys;
  static constexpr auto kFields = std::tuple{Field{wire::kApiKeys, &ApiKeyListReply::api_keys}};
};

using PrincipalCreate = Op<OpId::kPrincipalCreate, PrincipalCreateRequest, PrincipalDescription>;
using PrincipalDescribe = Op<OpId::kPrincipalDescribe, PrincipalArg, PrincipalDescription>;
using PrincipalList = Op<OpId::kPrincipalList, NoFields, PrincipalListReply>;
using PrincipalDelete = Op<OpId::kPrincipalDelete, PrincipalArg, NoFields>;
using PrincipalSetRoles =
    Op<OpId::kPrincipalSetRoles, PrincipalSetRolesRequest, PrincipalDescription>;
using ApiKeyCreate = Op<OpId::kApiKeyCreate, ApiKeyCreateRequest, ApiKeyCreateReply>;
using ApiKeyList = Op<OpId::kApiKeyList, ApiKeyListRequest, ApiKeyListReply>;
using ApiKeyRevoke = Op<OpId::kApiKeyRevoke, ApiKeyArg, ApiKeyDescription>;

}  // namespace ops
}  // namespace kmsd
