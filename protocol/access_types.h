// Requests and replies of the access operations: a tenant's principals and
// their API keys, custom roles and grants (docs/PROTOCOL.md, "Principals and
// API keys", "Roles and grants"). Same rules as
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
inline constexpr std::string_view kAllow = "allow";
inline constexpr std::string_view kApiKeys = "api_keys";
inline constexpr std::string_view kExpiresAt = "expires_at";
inline constexpr std::string_view kExpiresInSeconds = "expires_in_seconds";
inline constexpr std::string_view kGids = "gids";
inline constexpr std::string_view kGrants = "grants";
inline constexpr std::string_view kInherits = "inherits";
inline constexpr std::string_view kNarrowed = "narrowed";
inline constexpr std::string_view kOperations = "operations";
inline constexpr std::string_view kPermissions = "permissions";
inline constexpr std::string_view kLastUsedAt = "last_used_at";
inline constexpr std::string_view kPrincipal = "principal";
inline constexpr std::string_view kPrincipals = "principals";
inline constexpr std::string_view kRetiredAt = "retired_at";
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

struct RoleRequest {
  std::string_view name;
  std::optional<std::vector<std::string>> inherits;
  std::optional<std::vector<std::string>> allow;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &RoleRequest::name},
                                             Field{wire::kInherits, &RoleRequest::inherits},
                                             Field{wire::kAllow, &RoleRequest::allow}};
};

struct RoleArg {
  std::string_view name;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &RoleArg::name}};
};

// A custom role as defined, and what it gives with what it inherits:
// permissions on everything, and narrowed ones ("PERMISSION@RESOURCE").
struct RoleDescription {
  std::string tenant;
  std::string name;
  std::vector<std::string> inherits;
  std::vector<std::string> allow;
  std::vector<std::string> permissions;
  std::vector<std::string> narrowed;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kTenant, &RoleDescription::tenant},
                 Field{wire::kName, &RoleDescription::name},
                 Field{wire::kInherits, &RoleDescription::inherits},
                 Field{wire::kAllow, &RoleDescription::allow},
                 Field{wire::kPermissions, &RoleDescription::permissions},
                 Field{wire::kNarrowed, &RoleDescription::narrowed},
                 Field{wire::kCreatedAt, &RoleDescription::created_at},
                 Field{wire::kUpdatedAt, &RoleDescription::updated_at}};
};

struct RoleListReply {
  std::vector<RoleDescription> roles;
  static constexpr auto kFields = std::tuple{Field{wire::kRoles, &RoleListReply::roles}};
};

struct GrantCreateRequest {
  std::string_view key;
  std::string_view principal;
  std::vector<std::string> operations;
  std::optional<uint64_t> expires_in_seconds;  // absent: until retired
  // Pairs the request's encryption context must hold (absent: none).
  std::optional<EncryptionContext> context;
  static constexpr auto kFields =
      std::tuple{Field{wire::kKey, &GrantCreateRequest::key},
                 Field{wire::kPrincipal, &GrantCreateRequest::principal},
                 Field{wire::kOperations, &GrantCreateRequest::operations},
                 Field{wire::kExpiresInSeconds, &GrantCreateRequest::expires_in_seconds},
                 Field{wire::kContext, &GrantCreateRequest::context}};
};

struct GrantListRequest {
  std::optional<std::string_view> key;        // absent: every key's
  std::optional<std::string_view> principal;  // absent: every principal's
  static constexpr auto kFields = std::tuple{Field{wire::kKey, &GrantListRequest::key},
                                             Field{wire::kPrincipal, &GrantListRequest::principal}};
};

struct GrantArg {
  std::string_view id;
  static constexpr auto kFields = std::tuple{Field{wire::kId, &GrantArg::id}};
};

struct GrantDescription {
  std::string id;
  std::string tenant;
  std::string key_id;  // hex
  std::string key_name;
  std::string principal;
  std::vector<std::string> operations;
  EncryptionContext context;
  std::string state;  // active, retired, expired
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> retired_at;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &GrantDescription::id},
                 Field{wire::kTenant, &GrantDescription::tenant},
                 Field{wire::kKeyId, &GrantDescription::key_id},
                 Field{wire::kKeyName, &GrantDescription::key_name},
                 Field{wire::kPrincipal, &GrantDescription::principal},
                 Field{wire::kOperations, &GrantDescription::operations},
                 Field{wire::kContext, &GrantDescription::context},
                 Field{wire::kState, &GrantDescription::state},
                 Field{wire::kCreatedAt, &GrantDescription::created_at},
                 Field{wire::kExpiresAt, &GrantDescription::expires_at},
                 Field{wire::kRetiredAt, &GrantDescription::retired_at}};
};

struct GrantListReply {
  std::vector<GrantDescription> grants;
  static constexpr auto kFields = std::tuple{Field{wire::kGrants, &GrantListReply::grants}};
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
using RoleCreate = Op<OpId::kRoleCreate, RoleRequest, RoleDescription>;
using RoleUpdate = Op<OpId::kRoleUpdate, RoleRequest, RoleDescription>;
using RoleDescribe = Op<OpId::kRoleDescribe, RoleArg, RoleDescription>;
using RoleList = Op<OpId::kRoleList, NoFields, RoleListReply>;
using RoleDelete = Op<OpId::kRoleDelete, RoleArg, NoFields>;
using GrantCreate = Op<OpId::kGrantCreate, GrantCreateRequest, GrantDescription>;
using GrantList = Op<OpId::kGrantList, GrantListRequest, GrantListReply>;
using GrantRetire = Op<OpId::kGrantRetire, GrantArg, GrantDescription>;

}  // namespace ops
}  // namespace kmsd
