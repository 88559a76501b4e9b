// Principals and API keys (schema migration 4), custom roles and grants
// (migration 5) and tenant policies (migration 6) and TOTP seeds (migration 7) in SQLite: reading them into the snapshot and writing each
// access change of store.h (AccessChange).
//
// Contract: as records.h. Every function runs inside a transaction the caller
// opened (InTransaction in db.h), so access changes join a unit of work like
// any other change. The ALREADY_EXISTS and NOT_FOUND rules of store.h are
// checked by queries inside that transaction; table constraints are the
// backstop (CodeForWriteFailure). A role name outside [a-z0-9_-]+, a
// permission statement outside [a-z0-9:@/*_-]+ or a grant operation outside
// [a-z-]+ is INVALID_ARGUMENT: lists are stored as comma-separated text
// (schema.cc, migrations 4 and 5). Messages name tenants, principals and API key
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

// Every custom role, ordered by tenant and name.
Status LoadRoles(sqlite3* db, std::vector<RoleRecord>& out);

// Every grant with its constraints, ordered by id.
Status LoadGrants(sqlite3* db, std::vector<GrantRecord>& out);

// Every tenant policy, ordered by tenant.
Status LoadTenantPolicies(sqlite3* db, std::vector<TenantPolicyRecord>& out);

// Every principal's wrapped TOTP seed, ordered by tenant and principal.
Status LoadMfaSeeds(sqlite3* db, std::vector<MfaSeedRecord>& out);

// Deletes a key's grants (part of shredding the key).
Status DeleteKeyGrants(sqlite3* db, const KeyId& key_id);

// Writes one access change (inside a write transaction).
Status WriteAccessChange(sqlite3* db, const AccessChange& change);

// Forgets a tenant's grants, policy, roles, API keys and principals (part of
// shredding the tenant);
// the caller checks that the tenant exists and deletes it afterwards.
Status DeleteTenantAccess(sqlite3* db, const std::string& tenant);

}  // namespace kmsd::sqlite
