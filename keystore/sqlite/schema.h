// The keystore's identity, schema and migrations.
//
// Identity. The database header's application_id is kApplicationId ("kmsd"
// in ASCII); that is what marks a file as a keystore. Identify() refuses a
// file SQLite cannot read and an SQLite database that has a schema but not our
// application_id. Only a file with no schema at all (missing or empty) is
// initialised. Nothing is written to a file before it has been identified.
//
// Schema versions. The version is MAX(version) of the schema_migrations table
// (created by migration 1; PRAGMA user_version is not used, so the table also
// says when each step ran). Migrate() applies the missing steps in one
// transaction, each adding its row to schema_migrations. A released step is
// never edited: a schema change is a new step at the end (schema.cc). A file
// whose version is above the last step was written by a newer kmsd and is
// refused. Private to keystore/.
#pragma once

#include <sqlite3.h>

#include <cstdint>

#include "keystore/store.h"
#include "protocol/status.h"

namespace kmsd::sqlite {

inline constexpr int32_t kApplicationId = 0x6b6d7364;  // "kmsd"

// The schema this kmsd writes: the number of the last migration.
extern const int kLatestSchemaVersion;

enum class FileKind {
  kEmpty,     // no schema and no application_id: to be initialised
  kKeystore,  // carries kmsd's application_id
};

// Decides what the file holds by reading it only.
Result<FileKind> Identify(sqlite3* db);

// Switches the file to WAL (a write to its header) and sets the connection's
// durability and integrity options: synchronous=FULL, foreign_keys=ON.
Status Configure(sqlite3* db);

// 0 for an empty file; an error for a file that is not a keystore or is from
// a newer kmsd.
Result<int> CurrentSchemaVersion(sqlite3* db);

// Brings the schema to kLatestSchemaVersion in one transaction. The file is
// identified again inside it, in case another process initialised it since.
Status Migrate(sqlite3* db);

// Schema version and counts of a database that must be a kmsd keystore
// (an empty database is not one here).
Result<KeyStoreCopyInfo> Summarize(sqlite3* db);

}  // namespace kmsd::sqlite
