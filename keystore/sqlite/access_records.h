// Principals and API keys in SQLite (schema migration 4): reading them into
// the snapshot and writing each access change of store.h (AccessChange).
//
// Contract: as records.h. Every function runs inside a transaction the caller
// opened (InTransaction in db.h), so access changes join a unit of work like
// any other change. The ALREADY_EXISTS and NOT_FOUND rules of store.h are
// checked by queries inside that transaction; table constraints are the
// backstop (CodeForWriteFailure). A role name outside [a-z0-9_-]+ is
// INVALID_ARGUMENT: a principal's lists are stored as comma-separated text
// (schema.cc, migration 4). Messages name tenants, principals and API key
// ids, never digests. Private to keystore/.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

#include "keystore/store.h"
#include "protocol/status.h"

namespace kmsd::sqlite {

// Every principal, ordered by tenant and name, with its lists as written.
Status LoadPrincipals(sqlite3* db, std::vector<PrincipalRecord>& out);

// Every API key, ordered by tenant, principal and id.
Status LoadApiKeys(sqlite3* db, std::vector<ApiKeyRecord>& out);

// Writes one access change (inside a write transaction).
Status WriteAccessChange(sqlite3* db, const AccessChange& change);

// Forgets a tenant's API keys and principals (part of shredding the tenant);
// the caller checks that the tenant exists and deletes it afterwards.
Status DeleteTenantAccess(sqlite3* db, const std::string& tenant);

}  // namespace kmsd::sqlite
