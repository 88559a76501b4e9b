// The keystore's records in SQLite: reading the snapshot, writing each kind
// of change (store.h's store_change) and the atomic nonce-range reservation.
//
// Contract: every function runs inside a transaction the caller opened
// (InTransaction in db.h), so several of them make one unit of work. The
// ALREADY_EXISTS and NOT_FOUND rules of store.h are checked by queries inside
// that transaction; table constraints are the backstop, and their failures
// map to the same codes (CodeForWriteFailure). Messages name tables, tenants,
// key ids and labels, never wrapped key bytes. Private to keystore/.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include "keystore/sqlite/db.h"
#include "keystore/store.h"
#include "protocol/status.h"

namespace kmsd::sqlite {

// Reads every table into `out` (the caller holds a read transaction, so the
// tables agree with each other).
Status LoadSnapshot(sqlite3* db, KeyStoreSnapshot& out);

// Writes one change (inside a write transaction).
Status WriteChange(sqlite3* db, const KeyStoreChange& change);

// A new tenant with its keys, versions and aliases (KeyStore::CreateTenant):
// they must all be the tenant's own.
Status InsertTenantWithKeys(sqlite3* db, const TenantRecord& tenant,
                            const std::vector<KeyRecord>& keys,
                            const std::vector<KeyVersionRecord>& versions,
                            const std::vector<AliasRecord>& aliases);

// UPDATE ... SET reserved_encryptions = reserved_encryptions + count
// RETURNING the new figure: atomic between connections (inside a write
// transaction, which SQLite gives one connection at a time).
Result<uint64_t> ReserveRange(sqlite3* db, const KeyId& key_id, uint32_t version, uint64_t count);

// Raises a version's reservation to `reserved`, never lowering it
// (KeyStore::ReserveEncryptions).
Status RaiseReservation(sqlite3* db, const KeyId& key_id, uint32_t version, uint64_t reserved);

// A key id column; INTERNAL (a corrupt keystore) unless it is 16 bytes.
Result<KeyId> ReadKeyId(const Statement& row, int column);

// Queues token objects for destruction; a label already queued stays as it was.
Status QueueDestruction(sqlite3* db, const std::vector<std::string>& labels, int64_t queued_at);

}  // namespace kmsd::sqlite
