#include "keystore/sqlite/access_records.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "keystore/sqlite/db.h"
#include "keystore/sqlite/records.h"

namespace kmsd::sqlite {
namespace {

std::string PrincipalName(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

// --- Lists as text: elements joined by ',', '' for none ----------------------

bool IsRoleChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
bool IsStatementChar(char c) {
  return IsRoleChar(c) || c == ':' || c == '@' || c == '/' || c == '*';
}
bool IsOperationChar(char c) { return (c >= 'a' && c <= 'z') || c == '-'; }

// The characters each kind of list element may hold: never ',', so that the
// joined text splits back into the same list.
struct ListKind {
  std::string_view what;     // "role", "permission statement", ...
  std::string_view pattern;  // for the message
  bool (*allowed)(char);
};
constexpr ListKind kRoleList{"role", "[a-z0-9_-]+", IsRoleChar};
constexpr ListKind kStatementList{"permission statement", "[a-z0-9:@/*_-]+", IsStatementChar};
constexpr ListKind kOperationList{"grant operation", "[a-z-]+", IsOperationChar};

Status CheckList(const std::vector<std::string>& elements, const ListKind& kind) {
  for (const std::string& element : elements) {
    if (element.empty() || !std::all_of(element.begin(), element.end(), kind.allowed)) {
      return Status(Code::kInvalidArgument, std::string(kind.what) + " \"" + element.substr(0, 64) +
                                                "\" is not " + std::string(kind.pattern));
    }
  }
  return OkStatus();
}
Status CheckRoles(const std::vector<std::string>& roles) { return CheckList(roles, kRoleList); }

std::string JoinList(const std::vector<std::string>& elements) {
  std::string text;
  for (const std::string& element : elements) {
    if (!text.empty()) text += ',';
    text += element;
  }
  return text;
}

std::string JoinIds(const std::vector<uint64_t>& ids) {
  std::string text;
  for (uint64_t id : ids) {
    if (!text.empty()) text += ',';
    text += std::to_string(id);
  }
  return text;
}

// Splits `text` at ','; '' is the empty list. False if an element is empty.
template <typename OnElement>
bool SplitList(std::string_view text, OnElement on_element) {
  if (text.empty()) return true;
  for (;;) {
    const size_t comma = text.find(',');
    const std::string_view element = text.substr(0, comma);
    if (element.empty() || !on_element(element)) return false;
    if (comma == std::string_view::npos) return true;
    text.remove_prefix(comma + 1);
  }
}

// `owner` names the row: "principal acme/app", "role acme/ops", "grant 0123...".
Status Corrupt(const std::string& owner, std::string_view column) {
  return Status(Code::kInternal,
                "corrupt keystore: " + owner + " has a malformed " + std::string(column) + " list");
}
Status Corrupt(const std::string& tenant, const std::string& name, std::string_view column) {
  return Corrupt("principal " + PrincipalName(tenant, name), column);
}

Result<std::vector<std::string>> SplitNames(std::string_view text, const ListKind& kind,
                                            const std::string& owner, std::string_view column) {
  std::vector<std::string> elements;
  const bool ok = SplitList(text, [&](std::string_view element) {
    if (!std::all_of(element.begin(), element.end(), kind.allowed)) return false;
    elements.emplace_back(element);
    return true;
  });
  if (!ok) return Error(Corrupt(owner, column));
  return elements;
}

Result<std::vector<std::string>> SplitRoles(std::string_view text, const std::string& tenant,
                                            const std::string& name) {
  return SplitNames(text, kRoleList, "principal " + PrincipalName(tenant, name), "roles");
}

Result<std::vector<uint64_t>> SplitIds(std::string_view text, const std::string& tenant,
                                       const std::string& name, std::string_view column) {
  std::vector<uint64_t> ids;
  const bool ok = SplitList(text, [&](std::string_view element) {
    uint64_t id = 0;
    const char* end = element.data() + element.size();
    auto [ptr, ec] = std::from_chars(element.data(), end, id);
    if (ec != std::errc() || ptr != end) return false;
    ids.push_back(id);
    return true;
  });
  if (!ok) return Error(Corrupt(tenant, name, column));
  return ids;
}

// --- Checks ------------------------------------------------------------------

Status CheckTenantExists(sqlite3* db, const std::string& tenant) {
  ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM tenants WHERE name = ?", tenant));
  if (!exists) return Status(Code::kNotFound, "tenant " + tenant + " does not exist");
  return OkStatus();
}

Result<bool> PrincipalExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  return Exists(db, "SELECT 1 FROM principals WHERE tenant = ? AND name = ?", tenant, name);
}

Status CheckPrincipalExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  ASSIGN_OR_RETURN(bool exists, PrincipalExists(db, tenant, name));
  if (!exists) {
    return Status(Code::kNotFound, "principal " + PrincipalName(tenant, name) + " does not exist");
  }
  return OkStatus();
}

// --- Writers -----------------------------------------------------------------

Status InsertPrincipal(sqlite3* db, const PrincipalRecord& principal) {
  RETURN_IF_ERROR(CheckRoles(principal.roles));
  RETURN_IF_ERROR(CheckTenantExists(db, principal.tenant));
  ASSIGN_OR_RETURN(bool taken, PrincipalExists(db, principal.tenant, principal.name));
  if (taken) {
    return Status(
        Code::kAlreadyExists,
        "principal " + PrincipalName(principal.tenant, principal.name) + " already exists");
  }
  return Exec(db,
              "INSERT INTO principals (tenant, name, roles, uids, gids, created_at) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              principal.tenant, principal.name, JoinList(principal.roles), JoinIds(principal.uids),
              JoinIds(principal.gids), principal.created_at);
}

Status InsertApiKey(sqlite3* db, const ApiKeyRecord& key) {
  RETURN_IF_ERROR(CheckPrincipalExists(db, key.tenant, key.principal));
  ASSIGN_OR_RETURN(bool taken, Exists(db, "SELECT 1 FROM api_keys WHERE id = ?", key.id));
  if (taken) return Status(Code::kAlreadyExists, "API key " + key.id + " already exists");
  return Exec(db,
              "INSERT INTO api_keys (id, tenant, principal, digest, created_at, expires_at, "
              "revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              key.id, key.tenant, key.principal, key.digest, key.created_at, key.expires_at,
              key.revoked_at, key.last_used_at);
}

Status CheckRoleLists(const RoleRecord& role) {
  RETURN_IF_ERROR(CheckList(role.inherits, kRoleList));
  return CheckList(role.allow, kStatementList);
}

std::string RoleName(const std::string& tenant, const std::string& name) {
  return "role " + tenant + "/" + name;
}

Result<bool> RoleExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  return Exists(db, "SELECT 1 FROM roles WHERE tenant = ? AND name = ?", tenant, name);
}

Status CheckRoleExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  ASSIGN_OR_RETURN(bool exists, RoleExists(db, tenant, name));
  if (!exists) return Status(Code::kNotFound, RoleName(tenant, name) + " does not exist");
  return OkStatus();
}

Status InsertRole(sqlite3* db, const RoleRecord& role) {
  RETURN_IF_ERROR(CheckRoleLists(role));
  RETURN_IF_ERROR(CheckTenantExists(db, role.tenant));
  ASSIGN_OR_RETURN(bool taken, RoleExists(db, role.tenant, role.name));
  if (taken)
    return Status(Code::kAlreadyExists, RoleName(role.tenant, role.name) + " already exists");
  return Exec(db,
              "INSERT INTO roles (tenant, name, inherits, allow, created_at, updated_at) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              role.tenant, role.name, JoinList(role.inherits), JoinList(role.allow),
              role.created_at, role.updated_at);
}

Status InsertGrant(sqlite3* db, const GrantRecord& grant) {
  RETURN_IF_ERROR(CheckList(grant.operations, kOperationList));
  if (grant.operations.empty()) {
    return Status(Code::kInvalidArgument, "grant " + grant.id + " has no operations");
  }
  RETURN_IF_ERROR(CheckPrincipalExists(db, grant.tenant, grant.principal));
  ASSIGN_OR_RETURN(bool key_exists, Exists(db, "SELECT 1 FROM keys WHERE id = ? AND tenant = ?",
                                           grant.key_id, grant.tenant));
  if (!key_exists) {
    return Status(Code::kNotFound,
                  "key " + KeyIdToHex(grant.key_id) + " does not exist in tenant " + grant.tenant);
  }
  ASSIGN_OR_RETURN(bool taken, Exists(db, "SELECT 1 FROM grants WHERE id = ?", grant.id));
  if (taken) return Status(Code::kAlreadyExists, "grant " + grant.id + " already exists");
  RETURN_IF_ERROR(Exec(db,
                       "INSERT INTO grants (id, tenant, principal, key_id, operations, "
                       "created_at, expires_at, retired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       grant.id, grant.tenant, grant.principal, grant.key_id,
                       JoinList(grant.operations), grant.created_at, grant.expires_at,
                       grant.retired_at));
  for (const auto& [name, value] : grant.context) {
    RETURN_IF_ERROR(Exec(db,
                         "INSERT INTO grant_constraints (grant_id, name, value) VALUES (?, ?, ?)",
                         grant.id, name, value));
  }
  return OkStatus();
}

// Deletes the grants a query's ids select (their constraints first).
template <typename... Args>
Status DeleteGrantsWhere(sqlite3* db, const std::string& where, const Args&... args) {
  RETURN_IF_ERROR(Exec(db,
                       "DELETE FROM grant_constraints WHERE grant_id IN "
                       "(SELECT id FROM grants WHERE " +
                           where + ")",
                       args...));
  return Exec(db, "DELETE FROM grants WHERE " + where, args...);
}

// Writes each access change; see store.h for the rules.
struct AccessWriter {
  sqlite3* db;

  Status operator()(const store_change::CreatePrincipal& c) {
    return InsertPrincipal(db, c.principal);
  }
  Status operator()(const store_change::SetPrincipalRoles& c) {
    RETURN_IF_ERROR(CheckRoles(c.roles));
    RETURN_IF_ERROR(CheckPrincipalExists(db, c.tenant, c.name));
    return Exec(db, "UPDATE principals SET roles = ? WHERE tenant = ? AND name = ?",
                JoinList(c.roles), c.tenant, c.name);
  }
  Status operator()(const store_change::DeletePrincipal& c) {
    RETURN_IF_ERROR(CheckPrincipalExists(db, c.tenant, c.name));
    // Its API keys, grants and TOTP seed first: they refer to it.
    RETURN_IF_ERROR(
        Exec(db, "DELETE FROM api_keys WHERE tenant = ? AND principal = ?", c.tenant, c.name));
    RETURN_IF_ERROR(
        Exec(db, "DELETE FROM mfa_seeds WHERE tenant = ? AND principal = ?", c.tenant, c.name));
    RETURN_IF_ERROR(DeleteGrantsWhere(db, "tenant = ? AND principal = ?", c.tenant, c.name));
    return Exec(db, "DELETE FROM principals WHERE tenant = ? AND name = ?", c.tenant, c.name);
  }
  Status operator()(const store_change::CreateApiKey& c) { return InsertApiKey(db, c.key); }
  Status operator()(const store_change::RevokeApiKey& c) {
    ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM api_keys WHERE id = ? AND tenant = ?",
                                         c.id, c.tenant));
    if (!exists) {
      return Status(Code::kNotFound, "API key " + c.id + " does not exist in tenant " + c.tenant);
    }
    // A key revoked before keeps its first revoked_at.
    return Exec(db,
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                "WHERE id = ? AND tenant = ?",
                c.revoked_at, c.id, c.tenant);
  }
  Status operator()(const store_change::ApiKeyUsed& c) {
    // Never lowers last_used_at; no row (a key deleted since) is not an error.
    return Exec(db,
                "UPDATE api_keys SET last_used_at = ? "
                "WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                c.used_at, c.id, c.used_at);
  }
  Status operator()(const store_change::CreateRole& c) { return InsertRole(db, c.role); }
  Status operator()(const store_change::UpdateRole& c) {
    RETURN_IF_ERROR(CheckRoleLists(c.role));
    RETURN_IF_ERROR(CheckRoleExists(db, c.role.tenant, c.role.name));
    return Exec(db,
                "UPDATE roles SET inherits = ?, allow = ?, updated_at = ? "
                "WHERE tenant = ? AND name = ?",
                JoinList(c.role.inherits), JoinList(c.role.allow), c.role.updated_at, c.role.tenant,
                c.role.name);
  }
  Status operator()(const store_change::DeleteRole& c) {
    RETURN_IF_ERROR(CheckRoleExists(db, c.tenant, c.name));
    return Exec(db, "DELETE FROM roles WHERE tenant = ? AND name = ?", c.tenant, c.name);
  }
  Status operator()(const store_change::CreateGrant& c) { return InsertGrant(db, c.grant); }
  Status operator()(const store_change::RetireGrant& c) {
    ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM grants WHERE id = ? AND tenant = ?",
                                         c.id, c.tenant));
    if (!exists) {
      return Status(Code::kNotFound, "grant " + c.id + " does not exist in tenant " + c.tenant);
    }
    return Exec(
        db, "UPDATE grants SET retired_at = coalesce(retired_at, ?) WHERE id = ? AND tenant = ?",
        c.retired_at, c.id, c.tenant);
  }
  Status operator()(const store_change::SetMfaSeed& c) {
    const MfaSeedRecord& seed = c.seed;
    RETURN_IF_ERROR(CheckPrincipalExists(db, seed.tenant, seed.principal));
    return Exec(
        db,
        "INSERT INTO mfa_seeds (tenant, principal, wrapped, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (tenant, principal) DO UPDATE SET wrapped = excluded.wrapped, "
        "created_at = excluded.created_at",
        seed.tenant, seed.principal, seed.wrapped, seed.created_at);
  }
  Status operator()(const store_change::PutTenantPolicy& c) {
    const TenantPolicyRecord& policy = c.policy;
    ASSIGN_OR_RETURN(bool tenant_exists,
                     Exists(db, "SELECT 1 FROM tenants WHERE name = ?", policy.tenant));
    if (!tenant_exists) {
      return Status(Code::kNotFound, "tenant " + policy.tenant + " does not exist");
    }
    return Exec(db,
                "INSERT INTO tenant_policies (tenant, document, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET document = excluded.document, "
                "updated_at = excluded.updated_at",
                policy.tenant, policy.document, policy.updated_at);
  }
};

}  // namespace

Status LoadPrincipals(sqlite3* db, std::vector<PrincipalRecord>& out) {
  return ForEachRow(db,
                    "SELECT tenant, name, roles, uids, gids, created_at FROM principals "
                    "ORDER BY tenant, name",
                    [&](const Statement& row) -> Status {
                      PrincipalRecord principal;
                      principal.tenant = row.Text(0);
                      principal.name = row.Text(1);
                      principal.created_at = row.Int(5);
                      const std::string& tenant = principal.tenant;
                      const std::string& name = principal.name;
                      ASSIGN_OR_RETURN(principal.roles, SplitRoles(row.Text(2), tenant, name));
                      ASSIGN_OR_RETURN(principal.uids, SplitIds(row.Text(3), tenant, name, "uids"));
                      ASSIGN_OR_RETURN(principal.gids, SplitIds(row.Text(4), tenant, name, "gids"));
                      out.push_back(std::move(principal));
                      return OkStatus();
                    });
}

Status LoadApiKeys(sqlite3* db, std::vector<ApiKeyRecord>& out) {
  return ForEachRow(db,
                    "SELECT id, tenant, principal, digest, created_at, expires_at, revoked_at, "
                    "last_used_at FROM api_keys ORDER BY tenant, principal, id",
                    [&](const Statement& row) -> Status {
                      out.push_back({.id = row.Text(0),
                                     .tenant = row.Text(1),
                                     .principal = row.Text(2),
                                     .digest = row.Blob(3),
                                     .created_at = row.Int(4),
                                     .expires_at = row.OptionalInt(5),
                                     .revoked_at = row.OptionalInt(6),
                                     .last_used_at = row.OptionalInt(7)});
                      return OkStatus();
                    });
}

Status LoadRoles(sqlite3* db, std::vector<RoleRecord>& out) {
  return ForEachRow(
      db,
      "SELECT tenant, name, inherits, allow, created_at, updated_at FROM roles "
      "ORDER BY tenant, name",
      [&](const Statement& row) -> Status {
        RoleRecord role;
        role.tenant = row.Text(0);
        role.name = row.Text(1);
        const std::string owner = RoleName(role.tenant, role.name);
        ASSIGN_OR_RETURN(role.inherits, SplitNames(row.Text(2), kRoleList, owner, "inherits"));
        ASSIGN_OR_RETURN(role.allow, SplitNames(row.Text(3), kStatementList, owner, "allow"));
        role.created_at = row.Int(4);
        role.updated_at = row.Int(5);
        out.push_back(std::move(role));
        return OkStatus();
      });
}

Status LoadGrants(sqlite3* db, std::vector<GrantRecord>& out) {
  RETURN_IF_ERROR(ForEachRow(
      db,
      "SELECT id, tenant, principal, key_id, operations, created_at, expires_at, retired_at "
      "FROM grants ORDER BY id",
      [&](const Statement& row) -> Status {
        GrantRecord grant;
        grant.id = row.Text(0);
        grant.tenant = row.Text(1);
        grant.principal = row.Text(2);
        ASSIGN_OR_RETURN(grant.key_id, ReadKeyId(row, 3));
        ASSIGN_OR_RETURN(grant.operations, SplitNames(row.Text(4), kOperationList,
                                                      "grant " + grant.id, "operations"));
        grant.created_at = row.Int(5);
        grant.expires_at = row.OptionalInt(6);
        grant.retired_at = row.OptionalInt(7);
        out.push_back(std::move(grant));
        return OkStatus();
      }));
  // Constraints, joined to their grants (both ordered by id).
  size_t next = 0;
  return ForEachRow(db, "SELECT grant_id, name, value FROM grant_constraints ORDER BY grant_id",
                    [&](const Statement& row) -> Status {
                      const std::string id = row.Text(0);
                      while (next < out.size() && out[next].id < id) ++next;
                      if (next == out.size() || out[next].id != id) {
                        return Status(Code::kInternal,
                                      "corrupt keystore: a constraint of no grant " + id);
                      }
                      out[next].context[row.Text(1)] = row.Text(2);
                      return OkStatus();
                    });
}

Status LoadTenantPolicies(sqlite3* db, std::vector<TenantPolicyRecord>& out) {
  return ForEachRow(
      db, "SELECT tenant, document, updated_at FROM tenant_policies ORDER BY tenant",
      [&](const Statement& row) -> Status {
        out.push_back({.tenant = row.Text(0), .document = row.Text(1), .updated_at = row.Int(2)});
        return OkStatus();
      });
}

Status LoadMfaSeeds(sqlite3* db, std::vector<MfaSeedRecord>& out) {
  return ForEachRow(
      db, "SELECT tenant, principal, wrapped, created_at FROM mfa_seeds ORDER BY tenant, principal",
      [&](const Statement& row) -> Status {
        out.push_back({.tenant = row.Text(0),
                       .principal = row.Text(1),
                       .wrapped = row.Blob(2),
                       .created_at = row.Int(3)});
        return OkStatus();
      });
}

Status DeleteKeyGrants(sqlite3* db, const KeyId& key_id) {
  return DeleteGrantsWhere(db, "key_id = ?", key_id);
}

Status WriteAccessChange(sqlite3* db, const AccessChange& change) {
  return std::visit(AccessWriter{db}, change);
}

Status DeleteTenantAccess(sqlite3* db, const std::string& tenant) {
  RETURN_IF_ERROR(DeleteGrantsWhere(db, "tenant = ?", tenant));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM tenant_policies WHERE tenant = ?", tenant));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM mfa_seeds WHERE tenant = ?", tenant));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM roles WHERE tenant = ?", tenant));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM api_keys WHERE tenant = ?", tenant));
  return Exec(db, "DELETE FROM principals WHERE tenant = ?", tenant);
}

}  // namespace kmsd::sqlite
