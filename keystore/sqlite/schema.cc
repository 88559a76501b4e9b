#include "keystore/sqlite/schema.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <iterator>
#include <string>

#include "keystore/sqlite/db.h"

namespace kmsd::sqlite {
namespace {

struct Migration {
  int version;
  const char* sql;
};

// Append only (see schema.h). The tables mirror the records of
// store.h: key ids are 16-byte blobs, booleans 0 or 1, times unix seconds.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE schema_migrations (
  version    INTEGER PRIMARY KEY,
  applied_at INTEGER NOT NULL
);
CREATE TABLE tenants (
  name       TEXT NOT NULL PRIMARY KEY,
  root_label TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE keys (
  id          BLOB NOT NULL PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
  tenant      TEXT NOT NULL REFERENCES tenants (name),
  name        TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  UNIQUE (tenant, name)
);
CREATE TABLE key_versions (
  key_id     BLOB NOT NULL REFERENCES keys (id),
  version    INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
  wrapped    BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, version)
);
CREATE TABLE aliases (
  tenant     TEXT NOT NULL REFERENCES tenants (name),
  name       TEXT NOT NULL,
  key_id     BLOB NOT NULL REFERENCES keys (id),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, name)
);
)sql"},
    // Lifecycle: a key or tenant pending deletion has the time its window
    // ends; NULL otherwise. A key pending deletion is never enabled.
    {2, R"sql(
ALTER TABLE keys ADD COLUMN deletion_due_at INTEGER
  CHECK (deletion_due_at IS NULL OR (typeof(deletion_due_at) = 'integer' AND enabled = 0));
ALTER TABLE tenants ADD COLUMN deletion_due_at INTEGER
  CHECK (deletion_due_at IS NULL OR typeof(deletion_due_at) = 'integer');
)sql"},
    // Crypto-shredding, rotation and nonce limits. Each key gets its own
    // key-encryption key in the token (kek_label; '' for keys made before,
    // which stay wrapped under their tenant's root). Token objects to destroy
    // are queued in the same transaction that forgets their keys, and
    // dequeued once destroyed. A version records how many encryptions it has
    // reserved: the daemon never uses more than that, so a crash can only
    // over-count.
    {3, R"sql(
ALTER TABLE keys ADD COLUMN kek_label TEXT NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN rotation_period_seconds INTEGER
  CHECK (rotation_period_seconds IS NULL
         OR (typeof(rotation_period_seconds) = 'integer' AND rotation_period_seconds > 0));
ALTER TABLE keys ADD COLUMN min_decryption_version INTEGER NOT NULL DEFAULT 1
  CHECK (typeof(min_decryption_version) = 'integer' AND min_decryption_version >= 1);
ALTER TABLE key_versions ADD COLUMN reserved_encryptions INTEGER NOT NULL DEFAULT 0
  CHECK (typeof(reserved_encryptions) = 'integer' AND reserved_encryptions >= 0);
CREATE TABLE token_objects_to_destroy (
  label     TEXT NOT NULL PRIMARY KEY,
  queued_at INTEGER NOT NULL
);
-- How many encryptions the existing versions did is unknown: all of them
-- count as used (kAllEncryptionsReserved), so each key rotates on its next
-- encryption.
UPDATE key_versions SET reserved_encryptions = 4294967296;
)sql"},
    // Principals and API keys (access_records.h). A principal's lists are
    // text: the elements joined by ',' in the order given, '' for an empty
    // list; roles are [a-z0-9_-]+, uids and gids decimal integers. An API
    // key keeps only the HMAC-SHA256 of its secret (32 bytes), never the
    // secret; its id is 16 lowercase hex digits. A principal's API keys go
    // before it (the foreign key), and a tenant's principals before it.
    {4, R"sql(
CREATE TABLE principals (
  tenant     TEXT NOT NULL REFERENCES tenants (name),
  name       TEXT NOT NULL,
  roles      TEXT NOT NULL
    CHECK (roles = '' OR (roles NOT GLOB '*[^a-z0-9_,-]*' AND roles NOT GLOB ',*'
                          AND roles NOT GLOB '*,' AND roles NOT GLOB '*,,*')),
  uids       TEXT NOT NULL
    CHECK (uids = '' OR (uids NOT GLOB '*[^0-9,]*' AND uids NOT GLOB ',*'
                         AND uids NOT GLOB '*,' AND uids NOT GLOB '*,,*')),
  gids       TEXT NOT NULL
    CHECK (gids = '' OR (gids NOT GLOB '*[^0-9,]*' AND gids NOT GLOB ',*'
                         AND gids NOT GLOB '*,' AND gids NOT GLOB '*,,*')),
  created_at INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
  PRIMARY KEY (tenant, name)
);
CREATE TABLE api_keys (
  id           TEXT NOT NULL PRIMARY KEY
    CHECK (typeof(id) = 'text' AND length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
  tenant       TEXT NOT NULL,
  principal    TEXT NOT NULL,
  digest       BLOB NOT NULL CHECK (typeof(digest) = 'blob' AND length(digest) = 32),
  created_at   INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
  expires_at   INTEGER CHECK (expires_at IS NULL OR typeof(expires_at) = 'integer'),
  revoked_at   INTEGER CHECK (revoked_at IS NULL OR typeof(revoked_at) = 'integer'),
  last_used_at INTEGER CHECK (last_used_at IS NULL OR typeof(last_used_at) = 'integer'),
  FOREIGN KEY (tenant, principal) REFERENCES principals (tenant, name)
);
CREATE INDEX api_keys_by_principal ON api_keys (tenant, principal);
)sql"},
    // Custom roles and grants (access_records.h). A role's lists are text as
    // a principal's: inherited role names, and permission statements
    // ([a-z0-9:@/*_-]+, policy/roles.h). A grant names its key by id and
    // its operations as text; its encryption-context constraints are rows
    // of grant_constraints. A principal's grants go before it.
    {5, R"sql(
CREATE TABLE roles (
  tenant     TEXT NOT NULL REFERENCES tenants (name),
  name       TEXT NOT NULL,
  inherits   TEXT NOT NULL
    CHECK (inherits = '' OR (inherits NOT GLOB '*[^a-z0-9_,-]*' AND inherits NOT GLOB ',*'
                             AND inherits NOT GLOB '*,' AND inherits NOT GLOB '*,,*')),
  allow      TEXT NOT NULL
    CHECK (allow = '' OR (allow NOT GLOB '*[^a-z0-9:@/*_,-]*' AND allow NOT GLOB ',*'
                          AND allow NOT GLOB '*,' AND allow NOT GLOB '*,,*')),
  created_at INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
  updated_at INTEGER NOT NULL CHECK (typeof(updated_at) = 'integer'),
  PRIMARY KEY (tenant, name)
);
CREATE TABLE grants (
  id         TEXT NOT NULL PRIMARY KEY
    CHECK (typeof(id) = 'text' AND length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
  tenant     TEXT NOT NULL,
  principal  TEXT NOT NULL,
  key_id     BLOB NOT NULL CHECK (typeof(key_id) = 'blob' AND length(key_id) = 16),
  operations TEXT NOT NULL
    CHECK (operations <> '' AND operations NOT GLOB '*[^a-z,-]*' AND operations NOT GLOB ',*'
           AND operations NOT GLOB '*,' AND operations NOT GLOB '*,,*'),
  created_at INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
  expires_at INTEGER CHECK (expires_at IS NULL OR typeof(expires_at) = 'integer'),
  retired_at INTEGER CHECK (retired_at IS NULL OR typeof(retired_at) = 'integer'),
  FOREIGN KEY (tenant, principal) REFERENCES principals (tenant, name)
);
CREATE INDEX grants_by_principal ON grants (tenant, principal);
CREATE INDEX grants_by_key ON grants (key_id);
CREATE TABLE grant_constraints (
  grant_id TEXT NOT NULL REFERENCES grants (id),
  name     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (grant_id, name)
);
)sql"},
    // Tenant policies: the YAML document as put (policy/tenant_policy.h
    // reads it; the keystore does not).
    {6, R"sql(
CREATE TABLE tenant_policies (
  tenant     TEXT NOT NULL PRIMARY KEY REFERENCES tenants (name),
  document   TEXT NOT NULL CHECK (typeof(document) = 'text' AND length(document) <= 65536),
  updated_at INTEGER NOT NULL CHECK (typeof(updated_at) = 'integer')
);
)sql"},
    // Principals' TOTP seeds, wrapped under the tenant's secrets-key by the
    // daemon (a ciphertext of protocol/ciphertext.h).
    {7, R"sql(
CREATE TABLE mfa_seeds (
  tenant     TEXT NOT NULL,
  principal  TEXT NOT NULL,
  wrapped    BLOB NOT NULL CHECK (typeof(wrapped) = 'blob' AND length(wrapped) BETWEEN 1 AND 1024),
  created_at INTEGER NOT NULL CHECK (typeof(created_at) = 'integer'),
  PRIMARY KEY (tenant, principal),
  FOREIGN KEY (tenant, principal) REFERENCES principals (tenant, name)
);
)sql"},
};

constexpr bool MigrationsAreNumberedInOrder() {
  for (size_t i = 0; i < std::size(kMigrations); ++i) {
    if (kMigrations[i].version != static_cast<int>(i) + 1) return false;
  }
  return true;
}
static_assert(MigrationsAreNumberedInOrder(), "kMigrations must be numbered 1, 2, 3, ...");

Status ApplyMigration(sqlite3* db, const Migration& migration) {
  if (sqlite3_exec(db, migration.sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Status(Code::kInternal, "schema migration " + std::to_string(migration.version) + ": " +
                                       sqlite3_errmsg(db));
  }
  return Exec(db,
              "INSERT INTO schema_migrations (version, applied_at) "
              "VALUES (?, CAST(strftime('%s', 'now') AS INTEGER))",
              migration.version);
}

}  // namespace

const int kLatestSchemaVersion = static_cast<int>(std::size(kMigrations));

Result<FileKind> Identify(sqlite3* db) {
  // The first read of the file: here SQLite finds out it is not a database.
  Result<int64_t> application_id = QueryInt(db, "PRAGMA application_id");
  if (!application_id.has_value()) {
    if (sqlite3_errcode(db) == SQLITE_NOTADB) {
      return Error(Code::kInternal, "not a kmsd keystore: file is not a database");
    }
    return Error(Code::kInternal, "cannot read: " + application_id.error().message());
  }
  if (*application_id == kApplicationId) return FileKind::kKeystore;
  if (*application_id != 0) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%08x", static_cast<uint32_t>(*application_id));
    return Error(Code::kInternal, std::string("not a kmsd keystore: an SQLite database of "
                                              "another application (application_id ") +
                                      hex + ")");
  }
  ASSIGN_OR_RETURN(int64_t objects, QueryInt(db, "SELECT count(*) FROM sqlite_master"));
  if (objects != 0) {
    return Error(Code::kInternal,
                 "not a kmsd keystore: an SQLite database with tables but without kmsd's "
                 "application_id");
  }
  return FileKind::kEmpty;
}

Status Configure(sqlite3* db) {
  ASSIGN_OR_RETURN(std::string mode, QueryText(db, "PRAGMA journal_mode = WAL"));
  if (mode != "wal") {
    return Status(Code::kInternal, "cannot use WAL mode (journal_mode is " + mode + ")");
  }
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL"));
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON"));
  ASSIGN_OR_RETURN(int64_t foreign_keys, QueryInt(db, "PRAGMA foreign_keys"));
  if (foreign_keys != 1) {
    return Status(Code::kInternal, "the SQLite library does not enforce foreign keys");
  }
  return OkStatus();
}

Result<int> CurrentSchemaVersion(sqlite3* db) {
  ASSIGN_OR_RETURN(FileKind kind, Identify(db));
  if (kind == FileKind::kEmpty) return 0;
  ASSIGN_OR_RETURN(int64_t version,
                   QueryInt(db, "SELECT coalesce(max(version), 0) FROM schema_migrations"));
  if (version > kLatestSchemaVersion) {
    return Error(Code::kInternal, "written by a newer kmsd (schema version " +
                                      std::to_string(version) + ", this kmsd knows up to " +
                                      std::to_string(kLatestSchemaVersion) + ")");
  }
  if (version < 1) return Error(Code::kInternal, "corrupt keystore: no schema version");
  return static_cast<int>(version);
}

Status Migrate(sqlite3* db) {
  int from = 0;
  RETURN_IF_ERROR(InTransaction(db, "BEGIN IMMEDIATE", [&]() -> Status {
    ASSIGN_OR_RETURN(from, CurrentSchemaVersion(db));
    if (from == 0) {
      RETURN_IF_ERROR(Exec(db, "PRAGMA application_id = " + std::to_string(kApplicationId)));
    }
    for (const Migration& migration : kMigrations) {
      if (migration.version > from) RETURN_IF_ERROR(ApplyMigration(db, migration));
    }
    return OkStatus();
  }));
  if (from != kLatestSchemaVersion) {
    spdlog::info("keystore: schema migrated from version {} to {}", from, kLatestSchemaVersion);
  }
  return OkStatus();
}

Result<KeyStoreCopyInfo> Summarize(sqlite3* db) {
  ASSIGN_OR_RETURN(FileKind kind, Identify(db));
  if (kind != FileKind::kKeystore) {
    return Error(Code::kInternal, "not a kmsd keystore: an empty database");
  }
  KeyStoreCopyInfo info;
  ASSIGN_OR_RETURN(info.schema_version, CurrentSchemaVersion(db));
  ASSIGN_OR_RETURN(info.tenants, QueryInt(db, "SELECT count(*) FROM tenants"));
  ASSIGN_OR_RETURN(info.keys, QueryInt(db, "SELECT count(*) FROM keys"));
  return info;
}

}  // namespace kmsd::sqlite
