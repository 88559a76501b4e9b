// SqliteKeyStore: the KeyStore of store.h kept in one SQLite database.
//
// Identity. The database header's application_id is kApplicationId ("kmsd"
// in ASCII); that is what marks a file as a keystore. Opening refuses a file
// SQLite cannot read and an SQLite database that has a schema but not our
// application_id. Only a file with no schema at all (missing or empty) is
// initialised. Nothing is written to a file before it has been identified.
//
// Schema versions. The version is MAX(version) of the schema_migrations table
// (created by migration 1; PRAGMA user_version is not used, so the table also
// says when each step ran). kMigrations lists the steps in order; opening
// applies the missing ones in one transaction, each adding its row to
// schema_migrations. A released step is never edited: a schema change is a new
// step at the end. A file whose version is above the last step was written by
// a newer kmsd and is refused.
//
// Durability. The database is in WAL mode; the connection uses
// synchronous=FULL, foreign_keys=ON and a 5 s busy timeout. Every write is
// one BEGIN IMMEDIATE ... COMMIT and rolls back on any failure, so a call that
// returns OK is on disk and one that fails left nothing behind.
//
// Errors. The ALREADY_EXISTS and NOT_FOUND rules of store.h are checked by
// queries inside the write transaction; table constraints are the backstop,
// and their failures map to the same codes. Everything else is INTERNAL with
// SQLite's message, which names tables and columns but never values, so no
// wrapped key bytes reach a message.
//
// Backup and restore. Backup copies the live database with SQLite's online
// backup API on the store's own connection under mu_, so the copy is one
// consistent snapshot; writers wait for it. The copy goes to a temporary file
// beside the keystore (SQLite opens files by path; kmsd's own directory is
// the one place trusted with that), is switched to journal_mode=DELETE (one
// self-contained file) and counted; CreateFileNoFollow (backup_directory.h)
// then copies it into the target's directory, opened without following
// symlinks, as a temporary file that is fsynced and linked to the target
// name: link() fails if the name exists, which gives O_EXCL semantics without
// a window where a partial file has the target's name. Restore copies a backup beside the keystore,
// identifies and checks the copy there, and renames it over the keystore.
//
// Threads. One connection, used only under mu_: calls from many threads are
// serialized and a transaction never interleaves with another call.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "keystore/backup_directory.h"
#include "keystore/store.h"
#include "os/paths.h"

namespace kmsd {
namespace {

constexpr int32_t kApplicationId = 0x6b6d7364;  // "kmsd"
constexpr int kBusyTimeoutMs = 5000;

struct Migration {
  int version;
  const char* sql;
};

// Append only (see the file comment). The tables mirror the records of
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
};

constexpr bool MigrationsAreNumberedInOrder() {
  for (size_t i = 0; i < std::size(kMigrations); ++i) {
    if (kMigrations[i].version != static_cast<int>(i) + 1) return false;
  }
  return true;
}
static_assert(MigrationsAreNumberedInOrder(), "kMigrations must be numbered 1, 2, 3, ...");
constexpr int kLatestSchemaVersion = static_cast<int>(std::size(kMigrations));

// ---------------------------------------------------------------------------
// Thin RAII layer over the SQLite C API.

struct CloseConnection {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, CloseConnection>;

// INTERNAL with SQLite's message for the last failure on `db`.
Status SqliteError(sqlite3* db) { return Status(Code::kInternal, sqlite3_errmsg(db)); }

// A prepared statement; finalized when it dies. Parameters are bound in order
// by Bind(); Next() steps to the next row.
class Statement {
 public:
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
        SQLITE_OK) {
      return Error(SqliteError(db));
    }
    return Statement(stmt);
  }

  Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Accepts integers, strings and byte spans (Bytes, KeyId).
  template <typename... Args>
  Status Bind(const Args&... args) {
    int index = 0;
    int rc = SQLITE_OK;
    [[maybe_unused]] auto bind_one = [&](const auto& arg) {
      if (rc == SQLITE_OK) rc = BindAt(++index, arg);
    };
    (bind_one(args), ...);
    if (rc != SQLITE_OK) return SqliteError(db());
    return OkStatus();
  }

  // SQLITE_ROW, SQLITE_DONE or an extended error code.
  int Step() { return sqlite3_step(stmt_); }

  // True if a row is ready, false when there are no more.
  Result<bool> Next() {
    int rc = Step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(SqliteError(db()));
  }

  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::optional<int64_t> OptionalInt(int column) const {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
    return Int(column);
  }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    size_t size = static_cast<size_t>(sqlite3_column_bytes(stmt_, column));
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), size);
  }
  Bytes Blob(int column) const {
    const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, column));
    size_t size = static_cast<size_t>(sqlite3_column_bytes(stmt_, column));
    if (blob == nullptr) return Bytes();
    return Bytes(blob, blob + size);
  }
  sqlite3* db() const { return sqlite3_db_handle(stmt_); }

 private:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}

  // SQLite binds NULL for a null pointer, so empty values point at kEmpty.
  static constexpr char kEmpty[] = "";

  int BindAt(int index, int64_t value) { return sqlite3_bind_int64(stmt_, index, value); }
  int BindAt(int index, std::optional<int64_t> value) {
    return value ? BindAt(index, *value) : sqlite3_bind_null(stmt_, index);
  }
  int BindAt(int index, std::string_view text) {
    return sqlite3_bind_text64(stmt_, index, text.empty() ? kEmpty : text.data(), text.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  int BindAt(int index, std::span<const uint8_t> blob) {
    const void* data = blob.empty() ? static_cast<const void*>(kEmpty) : blob.data();
    return sqlite3_bind_blob64(stmt_, index, data, blob.size(), SQLITE_TRANSIENT);
  }

  sqlite3_stmt* stmt_;
};

// What a failed write means under store.h: a taken key is ALREADY_EXISTS, a
// missing referent NOT_FOUND, anything else INTERNAL.
Code CodeForWriteFailure(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
      return Code::kAlreadyExists;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Code::kNotFound;
    default:
      return Code::kInternal;
  }
}

// Runs one statement that returns no rows.
template <typename... Args>
Status Exec(sqlite3* db, std::string_view sql, const Args&... args) {
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  RETURN_IF_ERROR(stmt.Bind(args...));
  int rc = stmt.Step();
  if (rc == SQLITE_DONE) return OkStatus();
  return Status(CodeForWriteFailure(rc), sqlite3_errmsg(db));
}

// True if the query returns at least one row.
template <typename... Args>
Result<bool> Exists(sqlite3* db, std::string_view sql, const Args&... args) {
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  RETURN_IF_ERROR(stmt.Bind(args...));
  return stmt.Next();
}

// A query that must return a row, stepped to that row.
Result<Statement> QueryOneRow(sqlite3* db, std::string_view sql) {
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  ASSIGN_OR_RETURN(bool has_row, stmt.Next());
  if (!has_row) return Error(Code::kInternal, std::string(sql) + " returned no row");
  return stmt;
}
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql) {
  ASSIGN_OR_RETURN(Statement stmt, QueryOneRow(db, sql));
  return stmt.Int(0);
}
Result<std::string> QueryText(sqlite3* db, std::string_view sql) {
  ASSIGN_OR_RETURN(Statement stmt, QueryOneRow(db, sql));
  return stmt.Text(0);
}

// Calls `on_row(stmt)`, which returns Status, for each row of the query.
template <typename OnRow>
Status ForEachRow(sqlite3* db, std::string_view sql, OnRow on_row) {
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, sql));
  while (true) {
    ASSIGN_OR_RETURN(bool has_row, stmt.Next());
    if (!has_row) return OkStatus();
    RETURN_IF_ERROR(on_row(stmt));
  }
}

// Runs `body` (returning Status) between `begin` and COMMIT. On any failure
// the transaction is rolled back, so the database is as it was before.
template <typename Body>
Status InTransaction(sqlite3* db, std::string_view begin, Body&& body) {
  RETURN_IF_ERROR(Exec(db, begin));
  Status status = body();
  if (status.ok()) status = Exec(db, "COMMIT");
  if (!status.ok() && sqlite3_get_autocommit(db) == 0) {
    Status rollback = Exec(db, "ROLLBACK");
    if (!rollback.ok()) spdlog::error("keystore: ROLLBACK failed: {}", rollback.message());
  }
  return status;
}

// ---------------------------------------------------------------------------
// Opening: create, identify, configure, migrate.

// A new keystore file is readable and writable by its owner only; SQLite gives the -wal
// and -shm files the mode of the database file. An existing file is kept.
Status CreateFileIfMissing(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return OkStatus();
  }
  const int error = errno;
  if (error == EEXIST) return OkStatus();
  return Status(Code::kInternal,
                "cannot create the file: " + std::generic_category().message(error));
}

// Opens a connection without reading the file yet.
Result<Connection> Connect(const std::string& path) {
  if (sqlite3_threadsafe() == 0) {
    return Error(Code::kInternal, "the SQLite library was built without thread support");
  }
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  Connection db(raw);
  if (rc != SQLITE_OK) {
    return Error(Code::kInternal, std::string("cannot open: ") +
                                      (db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  if (sqlite3_busy_timeout(db.get(), kBusyTimeoutMs) != SQLITE_OK) {
    return Error(SqliteError(db.get()));
  }
  return db;
}

enum class FileKind {
  kEmpty,     // no schema and no application_id: to be initialised
  kKeystore,  // carries kmsd's application_id
};

// Decides what the file holds by reading it only.
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

// Switches the file to WAL (a write to its header) and sets the connection's
// durability and integrity options.
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

// Brings the schema to kLatestSchemaVersion in one transaction. The file is
// identified again inside it, in case another process initialised it since.
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

// ---------------------------------------------------------------------------
// Records.

std::string KeyName(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

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

// Inside a write transaction; a label already queued stays as it was.
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
  RETURN_IF_ERROR(ForEachRow(
      db, "SELECT name, root_label, created_at, deletion_due_at FROM tenants ORDER BY name",
      [&](const Statement& row) -> Status {
        out.tenants.push_back({.name = row.Text(0),
                               .root_label = row.Text(1),
                               .created_at = row.Int(2),
                               .deletion_due_at = row.OptionalInt(3)});
        return OkStatus();
      }));
  RETURN_IF_ERROR(ForEachRow(
      db,
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
        out.keys.push_back({.id = id,
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
      }));
  RETURN_IF_ERROR(ForEachRow(
      db,
      "SELECT key_id, version, wrapped, created_at, "
      "reserved_encryptions FROM key_versions ORDER BY key_id, version",
      [&](const Statement& row) -> Status {
        ASSIGN_OR_RETURN(KeyId key_id, ReadKeyId(row, 0));
        int64_t version = row.Int(1);
        if (version < 1 || version > std::numeric_limits<uint32_t>::max()) {
          return Status(Code::kInternal, "corrupt keystore: key " + KeyIdToHex(key_id) +
                                             " has version " + std::to_string(version));
        }
        out.versions.push_back({.key_id = key_id,
                                .version = static_cast<uint32_t>(version),
                                .wrapped = row.Blob(2),
                                .created_at = row.Int(3),
                                .reserved_encryptions = static_cast<uint64_t>(row.Int(4))});
        return OkStatus();
      }));
  RETURN_IF_ERROR(ForEachRow(db, "SELECT label FROM token_objects_to_destroy ORDER BY label",
                             [&](const Statement& row) -> Status {
                               out.token_objects_to_destroy.push_back(row.Text(0));
                               return OkStatus();
                             }));
  return ForEachRow(db,
                    "SELECT tenant, name, key_id, created_at, updated_at FROM aliases "
                    "ORDER BY tenant, name",
                    [&](const Statement& row) -> Status {
                      ASSIGN_OR_RETURN(KeyId key_id, ReadKeyId(row, 2));
                      out.aliases.push_back({.tenant = row.Text(0),
                                             .name = row.Text(1),
                                             .key_id = key_id,
                                             .created_at = row.Int(3),
                                             .updated_at = row.Int(4)});
                      return OkStatus();
                    });
}

// ---------------------------------------------------------------------------
// Backup and restore files.

Status ErrnoError(Code code, const std::string& what, int error) {
  return Status(code, what + ": " + std::generic_category().message(error));
}

// A temporary file that is removed when this dies, unless released.
class TempFile {
 public:
  // An empty 0600 file named after `target`, in the same directory (so that
  // it can be linked or renamed to `target`).
  static Result<TempFile> CreateBeside(const std::string& target) {
    std::string name = target + ".tmp-XXXXXX";
    int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) {
      return Error(ErrnoError(Code::kInternal, "cannot create a file beside " + target, errno));
    }
    ::close(fd);
    return TempFile(std::move(name));
  }
  TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (path_.empty()) return;
    ::unlink(path_.c_str());
    ::unlink((path_ + "-journal").c_str());
    ::unlink((path_ + "-wal").c_str());
    ::unlink((path_ + "-shm").c_str());
  }
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError(Code::kInternal, "cannot open " + path, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(Code::kInternal, "cannot fsync " + path, error);
  return OkStatus();
}
Status SyncFile(const std::string& path) { return SyncPath(path, O_RDONLY); }
Status SyncDirectoryOf(const std::string& path) {
  return SyncPath(DirectoryOf(path), O_RDONLY | O_DIRECTORY);
}

Result<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error(ErrnoError(Code::kInternal, path, errno));
  return static_cast<uint64_t>(st.st_size);
}

// Schema version and counts of a database that must be a kmsd keystore
// (an empty database is not one here).
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

// Copies the bytes of `from` (open for reading) into the file `to`.
Status CopyContents(int from, const std::string& to) {
  int out = ::open(to.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (out < 0) return ErrnoError(Code::kInternal, "cannot open " + to, errno);
  char buffer[1 << 16];
  Status status = OkStatus();
  for (;;) {
    ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoError(Code::kInternal, "cannot read the backup", errno);
      break;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = ErrnoError(Code::kInternal, "cannot write " + to, errno);
        break;
      }
      done += w;
    }
    if (!status.ok()) break;
  }
  ::close(out);
  return status;
}

// Folds the old keystore's WAL into it (best effort), so that the old file
// is whole should the rename below fail.
void CheckpointOldKeystore(const std::string& path) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  }
  sqlite3_close_v2(raw);
}

Status RemoveIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return OkStatus();
  return ErrnoError(Code::kInternal, "cannot remove " + path, errno);
}

// ---------------------------------------------------------------------------

class SqliteKeyStore final : public KeyStore {
 public:
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& path) {
    RETURN_IF_ERROR(CreateFileIfMissing(path));
    ASSIGN_OR_RETURN(Connection db, Connect(path));
    // Identify before anything else reads or writes the file: switching to
    // WAL rewrites the header of whatever file this is.
    RETURN_IF_ERROR(Identify(db.get()));
    RETURN_IF_ERROR(Configure(db.get()));
    RETURN_IF_ERROR(Migrate(db.get()));
    return std::unique_ptr<KeyStore>(new SqliteKeyStore(path, std::move(db)));
  }

  Result<KeyStoreSnapshot> LoadAll() override {
    std::lock_guard<std::mutex> lock(mu_);
    KeyStoreSnapshot snapshot;
    // One read transaction, so the four tables agree with each other.
    RETURN_IF_ERROR(
        InTransaction(db_.get(), "BEGIN", [&] { return LoadSnapshot(db_.get(), snapshot); }));
    return snapshot;
  }

  // Open() fails unless the schema reached the latest version.
  int SchemaVersion() const override { return kLatestSchemaVersion; }

  Status CreateTenant(const TenantRecord& tenant, const std::vector<KeyRecord>& keys,
                      const std::vector<KeyVersionRecord>& versions,
                      const std::vector<AliasRecord>& aliases) override {
    RETURN_IF_ERROR(CheckBatch(tenant, keys, versions, aliases));
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, TenantExists(db, tenant.name));
      if (exists) return Status(Code::kAlreadyExists, "tenant " + tenant.name + " already exists");
      RETURN_IF_ERROR(Exec(db,
                           "INSERT INTO tenants (name, root_label, created_at, deletion_due_at) "
                           "VALUES (?, ?, ?, ?)",
                           tenant.name, tenant.root_label, tenant.created_at,
                           tenant.deletion_due_at));
      for (const KeyRecord& key : keys) RETURN_IF_ERROR(InsertKey(db, key));
      for (const KeyVersionRecord& version : versions) RETURN_IF_ERROR(InsertVersion(db, version));
      for (const AliasRecord& alias : aliases) RETURN_IF_ERROR(InsertAlias(db, alias));
      return OkStatus();
    });
  }

  Status CreateKey(const KeyRecord& key, const KeyVersionRecord& first_version) override {
    if (first_version.key_id != key.id) {
      return Status(Code::kInvalidArgument,
                    "the first version is not of key " + KeyIdToHex(key.id));
    }
    RETURN_IF_ERROR(CheckVersionNumber(first_version));
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool tenant_exists, TenantExists(db, key.tenant));
      if (!tenant_exists)
        return Status(Code::kNotFound, "tenant " + key.tenant + " does not exist");
      RETURN_IF_ERROR(InsertKey(db, key));
      return InsertVersion(db, first_version);
    });
  }

  Status AddKeyVersion(const KeyVersionRecord& version) override {
    RETURN_IF_ERROR(CheckVersionNumber(version));
    return Write([&](sqlite3* db) { return InsertVersion(db, version); });
  }

  Status CreateAlias(const AliasRecord& alias) override {
    return Write([&](sqlite3* db) { return InsertAlias(db, alias); });
  }

  Status UpdateAlias(const std::string& tenant, const std::string& name, const KeyId& key_id,
                     int64_t updated_at) override {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool alias_exists, AliasExists(db, tenant, name));
      if (!alias_exists) {
        return Status(Code::kNotFound, "alias " + KeyName(tenant, name) + " does not exist");
      }
      ASSIGN_OR_RETURN(bool key_exists, KeyExistsInTenant(db, tenant, key_id));
      if (!key_exists) {
        return Status(Code::kNotFound,
                      "key " + KeyIdToHex(key_id) + " does not exist in tenant " + tenant);
      }
      return Exec(db, "UPDATE aliases SET key_id = ?, updated_at = ? WHERE tenant = ? AND name = ?",
                  key_id, updated_at, tenant, name);
    });
  }

  Status DeleteAlias(const std::string& tenant, const std::string& name) override {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, AliasExists(db, tenant, name));
      if (!exists) {
        return Status(Code::kNotFound, "alias " + KeyName(tenant, name) + " does not exist");
      }
      return Exec(db, "DELETE FROM aliases WHERE tenant = ? AND name = ?", tenant, name);
    });
  }

  Status SetKeyEnabled(const KeyId& key_id, bool enabled) override {
    return UpdateKey(key_id, "UPDATE keys SET enabled = ? WHERE id = ?", int64_t{enabled ? 1 : 0});
  }

  Status ScheduleKeyDeletion(const KeyId& key_id, int64_t due_at) override {
    return UpdateKey(key_id, "UPDATE keys SET enabled = 0, deletion_due_at = ? WHERE id = ?",
                     due_at);
  }

  Status CancelKeyDeletion(const KeyId& key_id) override {
    return UpdateKey(key_id, "UPDATE keys SET deletion_due_at = NULL WHERE id = ?");
  }

  Status ScheduleTenantDeletion(const std::string& tenant, int64_t due_at) override {
    return UpdateTenant(tenant, "UPDATE tenants SET deletion_due_at = ? WHERE name = ?", due_at);
  }

  Status CancelTenantDeletion(const std::string& tenant) override {
    return UpdateTenant(tenant, "UPDATE tenants SET deletion_due_at = NULL WHERE name = ?");
  }

  Status SetRotationPeriod(const KeyId& key_id, std::optional<int64_t> period_seconds) override {
    return UpdateKey(key_id, "UPDATE keys SET rotation_period_seconds = ? WHERE id = ?",
                     period_seconds);
  }

  Status SetMinDecryptionVersion(const KeyId& key_id, uint32_t version) override {
    return UpdateKey(key_id, "UPDATE keys SET min_decryption_version = ? WHERE id = ?",
                     int64_t{version});
  }

  Status ReserveEncryptions(const KeyId& key_id, uint32_t version, uint64_t reserved) override {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists,
                       Exists(db, "SELECT 1 FROM key_versions WHERE key_id = ? AND version = ?",
                              key_id, int64_t{version}));
      if (!exists) {
        return Status(Code::kNotFound, "key " + KeyIdToHex(key_id) + " version " +
                                           std::to_string(version) + " does not exist");
      }
      // Never lowers a reservation: a lower figure would under-count.
      return Exec(db,
                  "UPDATE key_versions SET reserved_encryptions = max(reserved_encryptions, ?) "
                  "WHERE key_id = ? AND version = ?",
                  static_cast<int64_t>(reserved), key_id, int64_t{version});
    });
  }

  Status ShredKey(const KeyId& key_id, const std::vector<std::string>& token_labels,
                  int64_t queued_at) override {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM keys WHERE id = ?", key_id));
      if (!exists) return Status(Code::kNotFound, "key " + KeyIdToHex(key_id) + " does not exist");
      RETURN_IF_ERROR(QueueDestruction(db, token_labels, queued_at));
      RETURN_IF_ERROR(Exec(db, "DELETE FROM aliases WHERE key_id = ?", key_id));
      RETURN_IF_ERROR(Exec(db, "DELETE FROM key_versions WHERE key_id = ?", key_id));
      return Exec(db, "DELETE FROM keys WHERE id = ?", key_id);
    });
  }

  Status ReplaceKeks(const KekReplacement& change, int64_t queued_at) override {
    return Write([&](sqlite3* db) -> Status {
      for (const KekReplacement::Key& key : change.keys) {
        ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM keys WHERE id = ? AND tenant = ?",
                                             key.id, change.tenant));
        if (!exists) {
          return Status(Code::kNotFound, "key " + KeyIdToHex(key.id) + " does not exist");
        }
        ASSIGN_OR_RETURN(
            Statement count,
            Statement::Prepare(db, "SELECT COUNT(*) FROM key_versions WHERE key_id = ?"));
        RETURN_IF_ERROR(count.Bind(key.id));
        ASSIGN_OR_RETURN(bool has_row, count.Next());
        if (!has_row || count.Int(0) != static_cast<int64_t>(key.versions.size())) {
          return Status(Code::kInvalidArgument,
                        "key " + KeyIdToHex(key.id) + ": every version must be rewrapped");
        }
        RETURN_IF_ERROR(
            Exec(db, "UPDATE keys SET kek_label = ? WHERE id = ?", key.kek_label, key.id));
        for (const auto& [version, wrapped] : key.versions) {
          RETURN_IF_ERROR(
              Exec(db, "UPDATE key_versions SET wrapped = ? WHERE key_id = ? AND version = ?",
                   wrapped, key.id, version));
          if (sqlite3_changes(db) != 1) {
            return Status(Code::kNotFound, "key " + KeyIdToHex(key.id) + " has no version " +
                                               std::to_string(version));
          }
        }
      }
      if (change.clear_tenant_root) {
        RETURN_IF_ERROR(
            Exec(db, "UPDATE tenants SET root_label = '' WHERE name = ?", change.tenant));
      }
      return QueueDestruction(db, change.token_labels_to_destroy, queued_at);
    });
  }

  Status ShredTenant(const std::string& tenant, const std::vector<std::string>& token_labels,
                     int64_t queued_at) override {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, TenantExists(db, tenant));
      if (!exists) return Status(Code::kNotFound, "tenant " + tenant + " does not exist");
      RETURN_IF_ERROR(QueueDestruction(db, token_labels, queued_at));
      RETURN_IF_ERROR(Exec(db, "DELETE FROM aliases WHERE tenant = ?", tenant));
      RETURN_IF_ERROR(Exec(
          db, "DELETE FROM key_versions WHERE key_id IN (SELECT id FROM keys WHERE tenant = ?)",
          tenant));
      RETURN_IF_ERROR(Exec(db, "DELETE FROM keys WHERE tenant = ?", tenant));
      return Exec(db, "DELETE FROM tenants WHERE name = ?", tenant);
    });
  }

  Status TokenObjectDestroyed(const std::string& label) override {
    return Write([&](sqlite3* db) {
      return Exec(db, "DELETE FROM token_objects_to_destroy WHERE label = ?", label);
    });
  }

  Result<KeyStoreCopyInfo> Backup(const std::string& path) override {
    // Refused before any copy is made: a bad path, a symlink on the way, a
    // name taken (CreateFileNoFollow checks again where it matters).
    RETURN_IF_ERROR(CheckCanCreateNoFollow(path));
    // SQLite writes the copy beside the keystore, in kmsd's own directory:
    // SQLite opens files by path, so it never writes in the backup directory.
    ASSIGN_OR_RETURN(TempFile staged, TempFile::CreateBeside(path_));
    ASSIGN_OR_RETURN(KeyStoreCopyInfo info, CopyInto(staged.path()));
    int in = ::open(staged.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return Error(ErrnoError(Code::kInternal, "cannot open " + staged.path(), errno));
    Result<uint64_t> bytes = CreateFileNoFollow(in, path);
    ::close(in);
    if (!bytes) return Error(bytes.error());
    info.path = path;
    info.bytes = *bytes;
    return info;
  }

 private:
  SqliteKeyStore(std::string path, Connection db) : path_(std::move(path)), db_(std::move(db)) {}

  // Runs body(db), returning Status, as one write transaction under mu_.
  template <typename Body>
  Status Write(Body&& body) {
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction(db_.get(), "BEGIN IMMEDIATE", [&] { return body(db_.get()); });
  }

  // One UPDATE of an existing key; `sql` binds `values...` then the key id.
  template <typename... Values>
  Status UpdateKey(const KeyId& key_id, std::string_view sql, const Values&... values) {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM keys WHERE id = ?", key_id));
      if (!exists) return Status(Code::kNotFound, "key " + KeyIdToHex(key_id) + " does not exist");
      return Exec(db, sql, values..., key_id);
    });
  }

  // One UPDATE of an existing tenant; `sql` binds `values...` then the name.
  template <typename... Values>
  Status UpdateTenant(const std::string& tenant, std::string_view sql, const Values&... values) {
    return Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(bool exists, TenantExists(db, tenant));
      if (!exists) return Status(Code::kNotFound, "tenant " + tenant + " does not exist");
      return Exec(db, sql, values..., tenant);
    });
  }

  // Copies the database into the empty file `temp` and counts the copy.
  Result<KeyStoreCopyInfo> CopyInto(const std::string& temp) {
    ASSIGN_OR_RETURN(Connection dest, Connect(temp));
    {
      std::lock_guard<std::mutex> lock(mu_);
      sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", db_.get(), "main");
      if (backup == nullptr) return Error(SqliteError(dest.get()));
      // -1: every page in one step, inside one read transaction of db_.
      const int step = sqlite3_backup_step(backup, -1);
      const int finish = sqlite3_backup_finish(backup);
      if (step != SQLITE_DONE || finish != SQLITE_OK) {
        return Error(Code::kInternal, std::string("backup: ") + sqlite3_errstr(step) + ", " +
                                          sqlite3_errmsg(dest.get()));
      }
    }
    ASSIGN_OR_RETURN(std::string mode, QueryText(dest.get(), "PRAGMA journal_mode = DELETE"));
    if (mode != "delete") {
      return Error(Code::kInternal, "backup: cannot leave WAL mode (journal_mode is " + mode + ")");
    }
    return Summarize(dest.get());
  }

  const std::string path_;  // the keystore file
  std::mutex mu_;
  Connection db_;  // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<KeyStore>> OpenSqliteKeyStore(const std::string& path) {
  Result<std::unique_ptr<KeyStore>> store = SqliteKeyStore::Open(path);
  if (!store.has_value()) {
    return Error(store.error().code(), "keystore " + path + ": " + store.error().message());
  }
  return store;
}

namespace {

// The labels the keystore at `path` has queued for destruction; none when it
// is missing, not a keystore, or older than schema 3 (best effort: the
// keystore being replaced may be the broken one).
std::vector<std::string> QueuedDestructionsOf(const std::string& path) {
  std::vector<std::string> labels;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return labels;
  Result<Connection> db = Connect(path);
  if (!db) return labels;
  Status read = ForEachRow(db->get(), "SELECT label FROM token_objects_to_destroy",
                           [&](const Statement& row) -> Status {
                             labels.push_back(row.Text(0));
                             return OkStatus();
                           });
  if (!read.ok()) labels.clear();
  return labels;
}

Status AdjustRestoredCopy(const std::string& path, const std::vector<std::string>& queued) {
  ASSIGN_OR_RETURN(Connection db, Connect(path));
  RETURN_IF_ERROR(Migrate(db.get()));
  return InTransaction(db.get(), "BEGIN IMMEDIATE", [&]() -> Status {
    RETURN_IF_ERROR(Exec(db.get(), "UPDATE key_versions SET reserved_encryptions = ?",
                         static_cast<int64_t>(kAllEncryptionsReserved)));
    return QueueDestruction(db.get(), queued, 0);
  });
}

}  // namespace

Result<KeyStoreCopyInfo> RestoreSqliteKeyStore(const std::string& backup_path,
                                               const std::string& keystore_path) {
  int in = ::open(backup_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    const int error = errno;
    return Error(ErrnoError(error == ENOENT ? Code::kNotFound : Code::kInternal,
                            "cannot open the backup " + backup_path, error));
  }
  Result<TempFile> temp = TempFile::CreateBeside(keystore_path);
  Status copied = temp ? CopyContents(in, temp->path()) : temp.error();
  ::close(in);
  RETURN_IF_ERROR(copied);

  // Identify and check the copy, never the keystore or the backup itself.
  Result<KeyStoreCopyInfo> info = [&]() -> Result<KeyStoreCopyInfo> {
    ASSIGN_OR_RETURN(Connection db, Connect(temp->path()));
    ASSIGN_OR_RETURN(KeyStoreCopyInfo summary, Summarize(db.get()));
    ASSIGN_OR_RETURN(std::string check, QueryText(db.get(), "PRAGMA quick_check"));
    if (check != "ok") return Error(Code::kInternal, "corrupt keystore: " + check);
    return summary;
  }();
  if (!info) {
    return Error(Code::kInvalidArgument, "backup " + backup_path + ": " + info.error().message());
  }
  RETURN_IF_ERROR(AdjustRestoredCopy(temp->path(), QueuedDestructionsOf(keystore_path)));
  RETURN_IF_ERROR(RemoveIfPresent(temp->path() + "-wal"));
  RETURN_IF_ERROR(RemoveIfPresent(temp->path() + "-shm"));
  RETURN_IF_ERROR(SyncFile(temp->path()));

  // A -wal left beside the old keystore would be replayed onto the restored
  // file at the next open (WAL frames are not tied to the database file), and
  // a stale -shm could index it: both go before the rename.
  CheckpointOldKeystore(keystore_path);
  RETURN_IF_ERROR(RemoveIfPresent(keystore_path + "-wal"));
  RETURN_IF_ERROR(RemoveIfPresent(keystore_path + "-shm"));
  if (::rename(temp->path().c_str(), keystore_path.c_str()) != 0) {
    return Error(ErrnoError(Code::kInternal, "cannot replace " + keystore_path, errno));
  }
  temp->Release();
  RETURN_IF_ERROR(SyncDirectoryOf(keystore_path));
  info->path = keystore_path;
  ASSIGN_OR_RETURN(info->bytes, FileSize(keystore_path));
  return info;
}

}  // namespace kmsd
