#include "keystore/sqlite/records.h"

#include <algorithm>
#include <limits>
#include <set>
#include <variant>

#include "keystore/sqlite/access_records.h"
#include "keystore/sqlite/db.h"

namespace kmsd::sqlite {
namespace {

std::string KeyName(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

Status CheckVersionNumber(const KeyVersionRecord& version) {
  if (version.version == 0) {
    return Status(Code::kInvalidArgument, "key versions start at 1");
  }
  return OkStatus();
}

// A new tenant's keys, versions and aliases must all be its own.
Status CheckBatch(const TenantRecord& tenant, const std::vector<KeyRecord>& keys,
                  const std::vector<KeyVersionRecord>& versions,
                  const std::vector<AliasRecord>& aliases) {
  std::set<KeyId> key_ids;
  for (const KeyRecord& key : keys) {
    if (key.tenant != tenant.name) {
      return Status(Code::kInvalidArgument,
                    "key " + KeyIdToHex(key.id) + " belongs to another tenant");
    }
    key_ids.insert(key.id);
  }
  for (const KeyVersionRecord& version : versions) {
    RETURN_IF_ERROR(CheckVersionNumber(version));
    if (!key_ids.contains(version.key_id)) {
      return Status(Code::kNotFound, "a key version refers to key " + KeyIdToHex(version.key_id) +
                                         ", which is not among the tenant's keys");
    }
  }
  for (const AliasRecord& alias : aliases) {
    if (alias.tenant != tenant.name) {
      return Status(Code::kInvalidArgument, "alias " + alias.name + " belongs to another tenant");
    }
    if (!key_ids.contains(alias.key_id)) {
      return Status(Code::kNotFound, "alias " + alias.name + " refers to key " +
                                         KeyIdToHex(alias.key_id) +
                                         ", which is not among the tenant's keys");
    }
  }
  return OkStatus();
}

Result<bool> TenantExists(sqlite3* db, const std::string& tenant) {
  return Exists(db, "SELECT 1 FROM tenants WHERE name = ?", tenant);
}

Result<bool> KeyExistsInTenant(sqlite3* db, const std::string& tenant, const KeyId& key_id) {
  return Exists(db, "SELECT 1 FROM keys WHERE id = ? AND tenant = ?", key_id, tenant);
}

Result<bool> AliasExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  return Exists(db, "SELECT 1 FROM aliases WHERE tenant = ? AND name = ?", tenant, name);
}

// The caller has checked that the key's tenant exists.
Status InsertKey(sqlite3* db, const KeyRecord& key) {
  ASSIGN_OR_RETURN(bool name_taken, Exists(db, "SELECT 1 FROM keys WHERE tenant = ? AND name = ?",
                                           key.tenant, key.name));
  if (name_taken) {
    return Status(Code::kAlreadyExists, "key " + KeyName(key.tenant, key.name) + " already exists");
  }
  ASSIGN_OR_RETURN(bool id_taken, Exists(db, "SELECT 1 FROM keys WHERE id = ?", key.id));
  if (id_taken) {
    return Status(Code::kAlreadyExists, "key id " + KeyIdToHex(key.id) + " already exists");
  }
  return Exec(db,
              "INSERT INTO keys (id, tenant, name, description, created_at, enabled, "
              "deletion_due_at, kek_label, rotation_period_seconds, min_decryption_version) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              key.id, key.tenant, key.name, key.description, key.created_at,
              int64_t{key.enabled ? 1 : 0}, key.deletion_due_at, key.kek_label,
              key.rotation_period_seconds, int64_t{key.min_decryption_version});
}

Status InsertVersion(sqlite3* db, const KeyVersionRecord& version) {
  const std::string key_hex = KeyIdToHex(version.key_id);
  ASSIGN_OR_RETURN(bool key_exists, Exists(db, "SELECT 1 FROM keys WHERE id = ?", version.key_id));
  if (!key_exists) return Status(Code::kNotFound, "key " + key_hex + " does not exist");
  ASSIGN_OR_RETURN(bool version_exists,
                   Exists(db, "SELECT 1 FROM key_versions WHERE key_id = ? AND version = ?",
                          version.key_id, int64_t{version.version}));
  if (version_exists) {
    return Status(Code::kAlreadyExists, "key " + key_hex + " version " +
                                            std::to_string(version.version) + " already exists");
  }
  return Exec(db,
              "INSERT INTO key_versions (key_id, version, wrapped, created_at, "
              "reserved_encryptions) VALUES (?, ?, ?, ?, ?)",
              version.key_id, int64_t{version.version}, version.wrapped, version.created_at,
              static_cast<int64_t>(version.reserved_encryptions));
}

// The alias's key must exist in the alias's tenant.
Status InsertAlias(sqlite3* db, const AliasRecord& alias) {
  ASSIGN_OR_RETURN(bool taken, AliasExists(db, alias.tenant, alias.name));
  if (taken) {
    return Status(Code::kAlreadyExists,
                  "alias " + KeyName(alias.tenant, alias.name) + " already exists");
  }
  ASSIGN_OR_RETURN(bool key_exists, KeyExistsInTenant(db, alias.tenant, alias.key_id));
  if (!key_exists) {
    return Status(Code::kNotFound,
                  "key " + KeyIdToHex(alias.key_id) + " does not exist in tenant " + alias.tenant);
  }
  return Exec(db,
              "INSERT INTO aliases (tenant, name, key_id, created_at, updated_at) "
              "VALUES (?, ?, ?, ?, ?)",
              alias.tenant, alias.name, alias.key_id, alias.created_at, alias.updated_at);
}

// A key that must exist; NOT_FOUND otherwise.
Status CheckKeyExists(sqlite3* db, const KeyId& key_id) {
  ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM keys WHERE id = ?", key_id));
  if (!exists) return Status(Code::kNotFound, "key " + KeyIdToHex(key_id) + " does not exist");
  return OkStatus();
}

Status CheckTenantExists(sqlite3* db, const std::string& tenant) {
  ASSIGN_OR_RETURN(bool exists, TenantExists(db, tenant));
  if (!exists) return Status(Code::kNotFound, "tenant " + tenant + " does not exist");
  return OkStatus();
}

Status CheckAliasExists(sqlite3* db, const std::string& tenant, const std::string& name) {
  ASSIGN_OR_RETURN(bool exists, AliasExists(db, tenant, name));
  if (!exists) return Status(Code::kNotFound, "alias " + KeyName(tenant, name) + " does not exist");
  return OkStatus();
}

// One UPDATE of an existing key; `sql` binds `values...` then the key id.
template <typename... Values>
Status UpdateKey(sqlite3* db, const KeyId& key_id, std::string_view sql, const Values&... values) {
  RETURN_IF_ERROR(CheckKeyExists(db, key_id));
  return Exec(db, sql, values..., key_id);
}

// One UPDATE of an existing tenant; `sql` binds `values...` then the name.
template <typename... Values>
Status UpdateTenant(sqlite3* db, const std::string& tenant, std::string_view sql,
                    const Values&... values) {
  RETURN_IF_ERROR(CheckTenantExists(db, tenant));
  return Exec(db, sql, values..., tenant);
}

Status InsertTenant(sqlite3* db, const TenantRecord& tenant) {
  ASSIGN_OR_RETURN(bool exists, TenantExists(db, tenant.name));
  if (exists) return Status(Code::kAlreadyExists, "tenant " + tenant.name + " already exists");
  return Exec(db,
              "INSERT INTO tenants (name, root_label, created_at, deletion_due_at) "
              "VALUES (?, ?, ?, ?)",
              tenant.name, tenant.root_label, tenant.created_at, tenant.deletion_due_at);
}

Status ReplaceKek(sqlite3* db, const std::string& tenant, const KekReplacement::Key& key) {
  ASSIGN_OR_RETURN(bool exists,
                   Exists(db, "SELECT 1 FROM keys WHERE id = ? AND tenant = ?", key.id, tenant));
  if (!exists) return Status(Code::kNotFound, "key " + KeyIdToHex(key.id) + " does not exist");
  ASSIGN_OR_RETURN(Statement count,
                   Statement::Prepare(db, "SELECT COUNT(*) FROM key_versions WHERE key_id = ?"));
  RETURN_IF_ERROR(count.Bind(key.id));
  ASSIGN_OR_RETURN(bool has_row, count.Next());
  if (!has_row || count.Int(0) != static_cast<int64_t>(key.versions.size())) {
    return Status(Code::kInvalidArgument,
                  "key " + KeyIdToHex(key.id) + ": every version must be rewrapped");
  }
  RETURN_IF_ERROR(Exec(db, "UPDATE keys SET kek_label = ? WHERE id = ?", key.kek_label, key.id));
  for (const auto& [version, wrapped] : key.versions) {
    RETURN_IF_ERROR(Exec(db, "UPDATE key_versions SET wrapped = ? WHERE key_id = ? AND version = ?",
                         wrapped, key.id, version));
    if (sqlite3_changes(db) != 1) {
      return Status(Code::kNotFound,
                    "key " + KeyIdToHex(key.id) + " has no version " + std::to_string(version));
    }
  }
  return OkStatus();
}

// Writes each kind of change; see store.h for the rules.
struct ChangeWriter {
  sqlite3* db;

  Status operator()(const store_change::CreateTenant& c) { return InsertTenant(db, c.tenant); }
  Status operator()(const store_change::CreateKey& c) {
    if (c.first_version.key_id != c.key.id) {
      return Status(Code::kInvalidArgument,
                    "the first version is not of key " + KeyIdToHex(c.key.id));
    }
    RETURN_IF_ERROR(CheckVersionNumber(c.first_version));
    RETURN_IF_ERROR(CheckTenantExists(db, c.key.tenant));
    RETURN_IF_ERROR(InsertKey(db, c.key));
    return InsertVersion(db, c.first_version);
  }
  Status operator()(const store_change::AddKeyVersion& c) {
    RETURN_IF_ERROR(CheckVersionNumber(c.version));
    return InsertVersion(db, c.version);
  }
  Status operator()(const store_change::CreateAlias& c) { return InsertAlias(db, c.alias); }
  Status operator()(const store_change::UpdateAlias& c) {
    RETURN_IF_ERROR(CheckAliasExists(db, c.tenant, c.name));
    ASSIGN_OR_RETURN(bool key_exists, KeyExistsInTenant(db, c.tenant, c.key_id));
    if (!key_exists) {
      return Status(Code::kNotFound,
                    "key " + KeyIdToHex(c.key_id) + " does not exist in tenant " + c.tenant);
    }
    return Exec(db, "UPDATE aliases SET key_id = ?, updated_at = ? WHERE tenant = ? AND name = ?",
                c.key_id, c.updated_at, c.tenant, c.name);
  }
  Status operator()(const store_change::DeleteAlias& c) {
    RETURN_IF_ERROR(CheckAliasExists(db, c.tenant, c.name));
    return Exec(db, "DELETE FROM aliases WHERE tenant = ? AND name = ?", c.tenant, c.name);
  }
  Status operator()(const store_change::SetKeyEnabled& c) {
    return UpdateKey(db, c.key_id, "UPDATE keys SET enabled = ? WHERE id = ?",
                     int64_t{c.enabled ? 1 : 0});
  }
  Status operator()(const store_change::ScheduleKeyDeletion& c) {
    return UpdateKey(db, c.key_id, "UPDATE keys SET enabled = 0, deletion_due_at = ? WHERE id = ?",
                     c.due_at);
  }
  Status operator()(const store_change::CancelKeyDeletion& c) {
    return UpdateKey(db, c.key_id, "UPDATE keys SET deletion_due_at = NULL WHERE id = ?");
  }
  Status operator()(const store_change::ScheduleTenantDeletion& c) {
    return UpdateTenant(db, c.tenant, "UPDATE tenants SET deletion_due_at = ? WHERE name = ?",
                        c.due_at);
  }
  Status operator()(const store_change::CancelTenantDeletion& c) {
    return UpdateTenant(db, c.tenant, "UPDATE tenants SET deletion_due_at = NULL WHERE name = ?");
  }
  Status operator()(const store_change::SetRotationPeriod& c) {
    return UpdateKey(db, c.key_id, "UPDATE keys SET rotation_period_seconds = ? WHERE id = ?",
                     c.period_seconds);
  }
  Status operator()(const store_change::SetMinDecryptionVersion& c) {
    return UpdateKey(db, c.key_id, "UPDATE keys SET min_decryption_version = ? WHERE id = ?",
                     int64_t{c.version});
  }
  Status operator()(const store_change::ShredKey& c) {
    RETURN_IF_ERROR(CheckKeyExists(db, c.key_id));
    RETURN_IF_ERROR(QueueDestruction(db, c.token_labels, c.queued_at));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM aliases WHERE key_id = ?", c.key_id));
    RETURN_IF_ERROR(DeleteKeyGrants(db, c.key_id));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM key_versions WHERE key_id = ?", c.key_id));
    return Exec(db, "DELETE FROM keys WHERE id = ?", c.key_id);
  }
  Status operator()(const store_change::ShredTenant& c) {
    RETURN_IF_ERROR(CheckTenantExists(db, c.tenant));
    RETURN_IF_ERROR(QueueDestruction(db, c.token_labels, c.queued_at));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM aliases WHERE tenant = ?", c.tenant));
    RETURN_IF_ERROR(
        Exec(db, "DELETE FROM key_versions WHERE key_id IN (SELECT id FROM keys WHERE tenant = ?)",
             c.tenant));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM keys WHERE tenant = ?", c.tenant));
    RETURN_IF_ERROR(DeleteTenantAccess(db, c.tenant));
    return Exec(db, "DELETE FROM tenants WHERE name = ?", c.tenant);
  }
  Status operator()(const store_change::TokenObjectDestroyed& c) {
    return Exec(db, "DELETE FROM token_objects_to_destroy WHERE label = ?", c.label);
  }
  Status operator()(const store_change::ReplaceKeks& c) {
    for (const KekReplacement::Key& key : c.change.keys) {
      RETURN_IF_ERROR(ReplaceKek(db, c.change.tenant, key));
    }
    if (c.change.clear_tenant_root) {
      RETURN_IF_ERROR(
          Exec(db, "UPDATE tenants SET root_label = '' WHERE name = ?", c.change.tenant));
    }
    return QueueDestruction(db, c.change.token_labels_to_destroy, c.queued_at);
  }
  // Principals and API keys: access_records.h.
  // The access changes: access_records.h.
  template <typename Change>
  requires std::is_constructible_v<AccessChange, const Change&> Status operator()(const Change& c) {
    return WriteAccessChange(db, c);
  }
};

Status LoadTenants(sqlite3* db, std::vector<TenantRecord>& out) {
  return ForEachRow(
      db, "SELECT name, root_label, created_at, deletion_due_at FROM tenants ORDER BY name",
      [&](const Statement& row) -> Status {
        out.push_back({.name = row.Text(0),
                       .root_label = row.Text(1),
                       .created_at = row.Int(2),
                       .deletion_due_at = row.OptionalInt(3)});
        return OkStatus();
      });
}

Status LoadKeys(sqlite3* db, std::vector<KeyRecord>& out) {
  return ForEachRow(db,
                    "SELECT id, tenant, name, description, created_at, enabled, "
                    "deletion_due_at, kek_label, rotation_period_seconds, "
                    "min_decryption_version FROM keys ORDER BY tenant, name",
                    [&](const Statement& row) -> Status {
                      ASSIGN_OR_RETURN(KeyId id, ReadKeyId(row, 0));
                      const int64_t min_version = row.Int(9);
                      if (min_version > std::numeric_limits<uint32_t>::max()) {
                        return Status(Code::kInternal, "corrupt keystore: key " + KeyIdToHex(id) +
                                                           " has minimum decryption version " +
                                                           std::to_string(min_version));
                      }
                      out.push_back({.id = id,
                                     .tenant = row.Text(1),
                                     .name = row.Text(2),
                                     .description = row.Text(3),
                                     .created_at = row.Int(4),
                                     .enabled = row.Int(5) != 0,
                                     .deletion_due_at = row.OptionalInt(6),
                                     .kek_label = row.Text(7),
                                     .rotation_period_seconds = row.OptionalInt(8),
                                     .min_decryption_version = static_cast<uint32_t>(min_version)});
                      return OkStatus();
                    });
}

Status LoadVersions(sqlite3* db, std::vector<KeyVersionRecord>& out) {
  return ForEachRow(db,
                    "SELECT key_id, version, wrapped, created_at, "
                    "reserved_encryptions FROM key_versions ORDER BY key_id, version",
                    [&](const Statement& row) -> Status {
                      ASSIGN_OR_RETURN(KeyId key_id, ReadKeyId(row, 0));
                      int64_t version = row.Int(1);
                      if (version < 1 || version > std::numeric_limits<uint32_t>::max()) {
                        return Status(Code::kInternal, "corrupt keystore: key " +
                                                           KeyIdToHex(key_id) + " has version " +
                                                           std::to_string(version));
                      }
                      out.push_back({.key_id = key_id,
                                     .version = static_cast<uint32_t>(version),
                                     .wrapped = row.Blob(2),
                                     .created_at = row.Int(3),
                                     .reserved_encryptions = static_cast<uint64_t>(row.Int(4))});
                      return OkStatus();
                    });
}

Status LoadAliases(sqlite3* db, std::vector<AliasRecord>& out) {
  return ForEachRow(db,
                    "SELECT tenant, name, key_id, created_at, updated_at FROM aliases "
                    "ORDER BY tenant, name",
                    [&](const Statement& row) -> Status {
                      ASSIGN_OR_RETURN(KeyId key_id, ReadKeyId(row, 2));
                      out.push_back({.tenant = row.Text(0),
                                     .name = row.Text(1),
                                     .key_id = key_id,
                                     .created_at = row.Int(3),
                                     .updated_at = row.Int(4)});
                      return OkStatus();
                    });
}

}  // namespace

Result<KeyId> ReadKeyId(const Statement& row, int column) {
  Bytes bytes = row.Blob(column);
  if (bytes.size() != kKeyIdSize) {
    return Error(Code::kInternal,
                 "corrupt keystore: a key id of " + std::to_string(bytes.size()) + " bytes");
  }
  KeyId id;
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

Status QueueDestruction(sqlite3* db, const std::vector<std::string>& labels, int64_t queued_at) {
  for (const std::string& label : labels) {
    if (label.empty()) return Status(Code::kInvalidArgument, "empty token object label");
    RETURN_IF_ERROR(Exec(db,
                         "INSERT OR IGNORE INTO token_objects_to_destroy (label, queued_at) "
                         "VALUES (?, ?)",
                         label, queued_at));
  }
  return OkStatus();
}

Status LoadSnapshot(sqlite3* db, KeyStoreSnapshot& out) {
  RETURN_IF_ERROR(LoadTenants(db, out.tenants));
  RETURN_IF_ERROR(LoadKeys(db, out.keys));
  RETURN_IF_ERROR(LoadVersions(db, out.versions));
  RETURN_IF_ERROR(ForEachRow(db, "SELECT label FROM token_objects_to_destroy ORDER BY label",
                             [&](const Statement& row) -> Status {
                               out.token_objects_to_destroy.push_back(row.Text(0));
                               return OkStatus();
                             }));
  RETURN_IF_ERROR(LoadPrincipals(db, out.principals));
  RETURN_IF_ERROR(LoadApiKeys(db, out.api_keys));
  RETURN_IF_ERROR(LoadRoles(db, out.roles));
  RETURN_IF_ERROR(LoadGrants(db, out.grants));
  RETURN_IF_ERROR(LoadTenantPolicies(db, out.policies));
  RETURN_IF_ERROR(LoadMfaSeeds(db, out.mfa_seeds));
  return LoadAliases(db, out.aliases);
}

Status WriteChange(sqlite3* db, const KeyStoreChange& change) {
  return std::visit(ChangeWriter{db}, change);
}

Status InsertTenantWithKeys(sqlite3* db, const TenantRecord& tenant,
                            const std::vector<KeyRecord>& keys,
                            const std::vector<KeyVersionRecord>& versions,
                            const std::vector<AliasRecord>& aliases) {
  RETURN_IF_ERROR(CheckBatch(tenant, keys, versions, aliases));
  RETURN_IF_ERROR(InsertTenant(db, tenant));
  for (const KeyRecord& key : keys) RETURN_IF_ERROR(InsertKey(db, key));
  for (const KeyVersionRecord& version : versions) RETURN_IF_ERROR(InsertVersion(db, version));
  for (const AliasRecord& alias : aliases) RETURN_IF_ERROR(InsertAlias(db, alias));
  return OkStatus();
}

Status RaiseReservation(sqlite3* db, const KeyId& key_id, uint32_t version, uint64_t reserved) {
  ASSIGN_OR_RETURN(bool exists,
                   Exists(db, "SELECT 1 FROM key_versions WHERE key_id = ? AND version = ?", key_id,
                          int64_t{version}));
  if (!exists) {
    return Status(Code::kNotFound, "key " + KeyIdToHex(key_id) + " version " +
                                       std::to_string(version) + " does not exist");
  }
  // Never lowers a reservation: a lower figure would under-count.
  return Exec(db,
              "UPDATE key_versions SET reserved_encryptions = max(reserved_encryptions, ?) "
              "WHERE key_id = ? AND version = ?",
              static_cast<int64_t>(reserved), key_id, int64_t{version});
}

Result<uint64_t> ReserveRange(sqlite3* db, const KeyId& key_id, uint32_t version, uint64_t count) {
  if (count == 0 || count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error(Code::kInvalidArgument, "a range of encryptions must hold 1 to 2^63-1");
  }
  ASSIGN_OR_RETURN(Statement update,
                   Statement::Prepare(db,
                                      "UPDATE key_versions "
                                      "SET reserved_encryptions = reserved_encryptions + ? "
                                      "WHERE key_id = ? AND version = ? "
                                      "RETURNING reserved_encryptions"));
  RETURN_IF_ERROR(update.Bind(static_cast<int64_t>(count), key_id, int64_t{version}));
  const int rc = update.Step();
  if (rc == SQLITE_DONE) {
    return Error(Code::kNotFound, "key " + KeyIdToHex(key_id) + " version " +
                                      std::to_string(version) + " does not exist");
  }
  if (rc != SQLITE_ROW) return Error(CodeForWriteFailure(rc), sqlite3_errmsg(db));
  const int64_t end = update.Int(0);
  // Step to the end so that the statement is done before COMMIT.
  ASSIGN_OR_RETURN(bool more, update.Next());
  if (more) return Error(Code::kInternal, "reservation: more than one row updated");
  return static_cast<uint64_t>(end);
}

}  // namespace kmsd::sqlite
