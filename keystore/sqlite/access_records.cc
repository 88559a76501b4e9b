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

namespace kmsd::sqlite {
namespace {

std::string PrincipalName(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

// --- Lists as text: elements joined by ',', '' for none ----------------------

bool IsRoleChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Each role must be [a-z0-9_-]+, so that the joined text splits back into
// the same list.
Status CheckRoles(const std::vector<std::string>& roles) {
  for (const std::string& role : roles) {
    if (role.empty() || !std::all_of(role.begin(), role.end(), IsRoleChar)) {
      return Status(Code::kInvalidArgument, "role \"" + role + "\" is not [a-z0-9_-]+");
    }
  }
  return OkStatus();
}

std::string JoinRoles(const std::vector<std::string>& roles) {
  std::string text;
  for (const std::string& role : roles) {
    if (!text.empty()) text += ',';
    text += role;
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

Status Corrupt(const std::string& tenant, const std::string& name, std::string_view column) {
  return Status(Code::kInternal, "corrupt keystore: principal " + PrincipalName(tenant, name) +
                                     " has a malformed " + std::string(column) + " list");
}

Result<std::vector<std::string>> SplitRoles(std::string_view text, const std::string& tenant,
                                            const std::string& name) {
  std::vector<std::string> roles;
  const bool ok = SplitList(text, [&](std::string_view role) {
    if (!std::all_of(role.begin(), role.end(), IsRoleChar)) return false;
    roles.emplace_back(role);
    return true;
  });
  if (!ok) return Error(Corrupt(tenant, name, "roles"));
  return roles;
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
              principal.tenant, principal.name, JoinRoles(principal.roles), JoinIds(principal.uids),
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
                JoinRoles(c.roles), c.tenant, c.name);
  }
  Status operator()(const store_change::DeletePrincipal& c) {
    RETURN_IF_ERROR(CheckPrincipalExists(db, c.tenant, c.name));
    // Its API keys first: they refer to it.
    RETURN_IF_ERROR(
        Exec(db, "DELETE FROM api_keys WHERE tenant = ? AND principal = ?", c.tenant, c.name));
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

Status WriteAccessChange(sqlite3* db, const AccessChange& change) {
  return std::visit(AccessWriter{db}, change);
}

Status DeleteTenantAccess(sqlite3* db, const std::string& tenant) {
  RETURN_IF_ERROR(Exec(db, "DELETE FROM api_keys WHERE tenant = ?", tenant));
  return Exec(db, "DELETE FROM principals WHERE tenant = ?", tenant);
}

}  // namespace kmsd::sqlite
