// Principals and API keys in the SQLite keystore (schema 4), custom roles and
// grants (schema 5): every access change and its error codes, the round trip
// through LoadAll, units of work, shredding a key or a tenant, migration from
// schema 3, and backup and restore.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "keystore/store.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/keystore/frozen_schemas.h"
#include "tests/unit/keystore/raw_db.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::kKmsdApplicationId;

// --- Records -----------------------------------------------------------------

PrincipalRecord Principal(const std::string& tenant, const std::string& name,
                          std::vector<std::string> roles = {"reader"},
                          std::vector<uint64_t> uids = {}, std::vector<uint64_t> gids = {}) {
  return {.tenant = tenant,
          .name = name,
          .roles = std::move(roles),
          .uids = std::move(uids),
          .gids = std::move(gids),
          .created_at = 1700000100};
}

// 16 lowercase hex digits.
std::string KeyIdText(int n) {
  char id[17];
  std::snprintf(id, sizeof id, "%016x", n);
  return id;
}

// An HMAC-SHA256-sized digest that differs per key and has zero bytes.
Bytes Digest(int n) {
  Bytes digest(32);
  for (size_t i = 0; i < digest.size(); ++i) {
    digest[i] = static_cast<uint8_t>((i * 11 + static_cast<size_t>(n) * 29) & 0xff);
  }
  digest[0] = 0;
  return digest;
}

ApiKeyRecord ApiKey(int n, const std::string& tenant, const std::string& principal) {
  return {.id = KeyIdText(n),
          .tenant = tenant,
          .principal = principal,
          .digest = Digest(n),
          .created_at = 1700000200,
          .expires_at = {},
          .revoked_at = {},
          .last_used_at = {}};
}

// A snapshot holding only principals and API keys.
KeyStoreSnapshot Access(std::vector<PrincipalRecord> principals,
                        std::vector<ApiKeyRecord> api_keys = {}) {
  KeyStoreSnapshot snapshot;
  snapshot.principals = std::move(principals);
  snapshot.api_keys = std::move(api_keys);
  return snapshot;
}

std::string Join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += "[" + item + "]";
  return text;
}

std::string Join(const std::vector<uint64_t>& items) {
  std::string text;
  for (uint64_t item : items) text += "[" + std::to_string(item) + "]";
  return text;
}

std::string Time(const std::optional<int64_t>& t) { return t ? std::to_string(*t) : "none"; }

// One line per record, so a mismatch shows as a readable diff.
std::string DumpAccess(const KeyStoreSnapshot& s) {
  std::ostringstream out;
  for (const auto& p : s.principals) {
    out << "principal " << p.tenant << "/" << p.name << " roles=" << Join(p.roles)
        << " uids=" << Join(p.uids) << " gids=" << Join(p.gids) << " at=" << p.created_at << "\n";
  }
  for (const auto& k : s.api_keys) {
    out << "api_key " << k.id << " " << k.tenant << "/" << k.principal << " digest=";
    for (uint8_t b : k.digest) out << static_cast<int>(b) << ",";
    out << " at=" << k.created_at << " expires=" << Time(k.expires_at)
        << " revoked=" << Time(k.revoked_at) << " used=" << Time(k.last_used_at) << "\n";
  }
  return out.str();
}

std::string DumpTenants(const KeyStoreSnapshot& s) {
  std::string names;
  for (const auto& t : s.tenants) names += t.name + ",";
  return names;
}

// --- Raw SQLite access: tests/unit/keystore/raw_db.h ---------------------------

using testing::RawDb;

// --- Fixture -----------------------------------------------------------------

class SqliteAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Reopen();
    ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
    ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("beta"), {}, {}, {}).ok());
  }

  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<KeyStore>> opened = OpenSqliteKeyStore(path_);
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
  }

  KeyStoreSnapshot Load() {
    Result<KeyStoreSnapshot> snapshot = store_->LoadAll();
    EXPECT_TRUE(snapshot.has_value()) << snapshot.error().ToString();
    return snapshot.has_value() ? std::move(*snapshot) : KeyStoreSnapshot{};
  }

  Status Write(AccessChange change) { return store_->WriteAccess(change); }

  void MustWrite(AccessChange change) {
    Status status = store_->WriteAccess(change);
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  testing::TempDir dir_;
  std::string path_ = dir_ / "keystore.db";
  std::unique_ptr<KeyStore> store_;
};

// --- Principals --------------------------------------------------------------

TEST_F(SqliteAccessTest, LoadAllRoundTripsEveryField) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  MustWrite(store_change::CreatePrincipal{
      Principal("acme", "admin", {"admin", "key-reader", "audit_log"}, {0, 1000, kMax}, {42})});
  MustWrite(store_change::CreatePrincipal{Principal("acme", "nobody", {}, {}, {})});
  MustWrite(store_change::CreatePrincipal{Principal("beta", "app", {"encrypt"}, {}, {7, 8})});
  ApiKeyRecord plain = ApiKey(1, "acme", "admin");
  ApiKeyRecord timed = ApiKey(2, "acme", "admin");
  timed.expires_at = 1800000000;
  timed.revoked_at = 1700000500;
  timed.last_used_at = 1700000400;
  ApiKeyRecord other = ApiKey(3, "beta", "app");
  other.expires_at = -1;  // any int64 is kept as given
  for (const ApiKeyRecord& key : {timed, other, plain}) {
    MustWrite(store_change::CreateApiKey{key});
  }
  Reopen();
  const KeyStoreSnapshot expected = Access(
      {Principal("acme", "admin", {"admin", "key-reader", "audit_log"}, {0, 1000, kMax}, {42}),
       Principal("acme", "nobody", {}, {}, {}), Principal("beta", "app", {"encrypt"}, {}, {7, 8})},
      {plain, timed, other});  // by tenant, principal and id
  EXPECT_EQ(DumpAccess(Load()), DumpAccess(expected));
}

TEST_F(SqliteAccessTest, DuplicatePrincipalIsAlreadyExists) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"admin"})});
  Status status = Write(store_change::CreatePrincipal{Principal("acme", "alice", {"reader"})});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_THAT(status.message(), HasSubstr("acme/alice"));
  // The same name in another tenant is another principal.
  MustWrite(store_change::CreatePrincipal{Principal("beta", "alice", {"reader"})});
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.principals.size(), 2u);
  EXPECT_EQ(snapshot.principals[0].roles, std::vector<std::string>{"admin"});
}

TEST_F(SqliteAccessTest, CreatePrincipalInMissingTenantIsNotFound) {
  EXPECT_EQ(Write(store_change::CreatePrincipal{Principal("nope", "alice")}).code(),
            Code::kNotFound);
  EXPECT_TRUE(Load().principals.empty());
}

TEST_F(SqliteAccessTest, RoleNamesOutsideTheEncodingAreInvalidArgument) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"reader"})});
  for (const char* role : {"a,b", "", "Admin", "x y", "r\xc3\xa9"}) {
    EXPECT_EQ(Write(store_change::CreatePrincipal{Principal("acme", "bob", {"ok", role})}).code(),
              Code::kInvalidArgument)
        << role;
    EXPECT_EQ(Write(store_change::SetPrincipalRoles{"acme", "alice", {role}}).code(),
              Code::kInvalidArgument)
        << role;
  }
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.principals.size(), 1u);
  EXPECT_EQ(snapshot.principals[0].roles, std::vector<std::string>{"reader"});
}

TEST_F(SqliteAccessTest, SetPrincipalRolesReplacesOnlyTheRoles) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"reader"}, {1000}, {100})});
  MustWrite(store_change::SetPrincipalRoles{"acme", "alice", {"admin", "reader"}});
  Reopen();
  EXPECT_EQ(DumpAccess(Load()),
            DumpAccess(Access({Principal("acme", "alice", {"admin", "reader"}, {1000}, {100})})));
  MustWrite(store_change::SetPrincipalRoles{"acme", "alice", {}});
  EXPECT_TRUE(Load().principals.at(0).roles.empty());
}

TEST_F(SqliteAccessTest, SetRolesOfMissingPrincipalIsNotFound) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  EXPECT_EQ(Write(store_change::SetPrincipalRoles{"acme", "bob", {"admin"}}).code(),
            Code::kNotFound);
  // alice of acme is not alice of beta.
  EXPECT_EQ(Write(store_change::SetPrincipalRoles{"beta", "alice", {"admin"}}).code(),
            Code::kNotFound);
  EXPECT_EQ(Load().principals.at(0).roles, std::vector<std::string>{"reader"});
}

TEST_F(SqliteAccessTest, DeletePrincipalRemovesItAndItsApiKeysOnly) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreatePrincipal{Principal("acme", "bob")});
  MustWrite(store_change::CreatePrincipal{Principal("beta", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(2, "acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(3, "acme", "bob")});
  MustWrite(store_change::CreateApiKey{ApiKey(4, "beta", "alice")});
  MustWrite(store_change::DeletePrincipal{"acme", "alice"});
  Reopen();
  EXPECT_EQ(DumpAccess(Load()),
            DumpAccess(Access({Principal("acme", "bob"), Principal("beta", "alice")},
                              {ApiKey(3, "acme", "bob"), ApiKey(4, "beta", "alice")})));
  // Its keys' ids are free again.
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
}

TEST_F(SqliteAccessTest, DeleteMissingPrincipalIsNotFound) {
  EXPECT_EQ(Write(store_change::DeletePrincipal{"acme", "alice"}).code(), Code::kNotFound);
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  EXPECT_EQ(Write(store_change::DeletePrincipal{"beta", "alice"}).code(), Code::kNotFound);
  MustWrite(store_change::DeletePrincipal{"acme", "alice"});
  EXPECT_EQ(Write(store_change::DeletePrincipal{"acme", "alice"}).code(), Code::kNotFound);
}

// --- API keys ----------------------------------------------------------------

TEST_F(SqliteAccessTest, DuplicateApiKeyIdIsAlreadyExists) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreatePrincipal{Principal("beta", "bob")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  ApiKeyRecord again = ApiKey(1, "acme", "alice");
  again.digest = Digest(9);
  Status status = Write(store_change::CreateApiKey{again});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_THAT(status.message(), HasSubstr(KeyIdText(1)));
  // Ids are unique across tenants.
  EXPECT_EQ(Write(store_change::CreateApiKey{ApiKey(1, "beta", "bob")}).code(),
            Code::kAlreadyExists);
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.api_keys.size(), 1u);
  EXPECT_EQ(snapshot.api_keys[0].digest, Digest(1));
}

TEST_F(SqliteAccessTest, ApiKeyOfMissingPrincipalIsNotFound) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  EXPECT_EQ(Write(store_change::CreateApiKey{ApiKey(1, "acme", "bob")}).code(), Code::kNotFound);
  // alice exists in acme only.
  EXPECT_EQ(Write(store_change::CreateApiKey{ApiKey(2, "beta", "alice")}).code(), Code::kNotFound);
  EXPECT_EQ(Write(store_change::CreateApiKey{ApiKey(3, "nope", "alice")}).code(), Code::kNotFound);
  EXPECT_TRUE(Load().api_keys.empty());
}

TEST_F(SqliteAccessTest, TableConstraintsBackTheCallersChecks) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  ApiKeyRecord short_id = ApiKey(1, "acme", "alice");
  short_id.id = "abc";
  ApiKeyRecord upper_id = ApiKey(2, "acme", "alice");
  upper_id.id = "00000000000000AB";
  ApiKeyRecord short_digest = ApiKey(3, "acme", "alice");
  short_digest.digest.resize(31);
  for (const ApiKeyRecord& key : {short_id, upper_id, short_digest}) {
    Status status = Write(store_change::CreateApiKey{key});
    EXPECT_EQ(status.code(), Code::kInternal) << key.id;
    EXPECT_THAT(status.message(), HasSubstr("CHECK constraint failed")) << key.id;
  }
  EXPECT_TRUE(Load().api_keys.empty());
}

TEST_F(SqliteAccessTest, RevokeTwiceKeepsTheFirstTime) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  MustWrite(store_change::RevokeApiKey{"acme", KeyIdText(1), 1700001000});
  MustWrite(store_change::RevokeApiKey{"acme", KeyIdText(1), 1700002000});
  MustWrite(store_change::RevokeApiKey{"acme", KeyIdText(1), 1700000900});
  Reopen();
  EXPECT_EQ(Load().api_keys.at(0).revoked_at, 1700001000);
}

TEST_F(SqliteAccessTest, RevokeInAnotherTenantIsNotFound) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  EXPECT_EQ(Write(store_change::RevokeApiKey{"beta", KeyIdText(1), 1700001000}).code(),
            Code::kNotFound);
  EXPECT_EQ(Write(store_change::RevokeApiKey{"acme", KeyIdText(2), 1700001000}).code(),
            Code::kNotFound);
  EXPECT_FALSE(Load().api_keys.at(0).revoked_at.has_value());
}

TEST_F(SqliteAccessTest, ApiKeyUsedNeverLowersLastUse) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(2, "acme", "alice")});
  MustWrite(store_change::ApiKeyUsed{KeyIdText(1), 1700001000});
  MustWrite(store_change::ApiKeyUsed{KeyIdText(1), 1700000500});
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(snapshot.api_keys.at(0).last_used_at, 1700001000);
  EXPECT_FALSE(snapshot.api_keys.at(1).last_used_at.has_value());  // only the key used
  MustWrite(store_change::ApiKeyUsed{KeyIdText(1), 1700002000});
  EXPECT_EQ(Load().api_keys.at(0).last_used_at, 1700002000);
}

TEST_F(SqliteAccessTest, ApiKeyUsedOfMissingKeyIsOkAndRecordsNothing) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  MustWrite(store_change::DeletePrincipal{"acme", "alice"});
  MustWrite(store_change::ApiKeyUsed{KeyIdText(1), 1700001000});
  MustWrite(store_change::ApiKeyUsed{KeyIdText(7), 1700001000});
  EXPECT_TRUE(Load().api_keys.empty());
}

// --- Units of work -----------------------------------------------------------

TEST_F(SqliteAccessTest, UnitOfWorkCreatesTenantPrincipalAndApiKeyTogether) {
  UnitOfWork unit;
  unit.Add(store_change::CreateTenant{testing::SampleTenant("gamma")})
      .Add(store_change::CreatePrincipal{Principal("gamma", "root", {"admin"})})
      .Add(store_change::CreateApiKey{ApiKey(1, "gamma", "root")})
      .Add(store_change::ApiKeyUsed{KeyIdText(1), 1700000300});
  ASSERT_TRUE(store_->Apply(unit).ok());
  ApiKeyRecord used = ApiKey(1, "gamma", "root");
  used.last_used_at = 1700000300;
  EXPECT_EQ(DumpAccess(Load()),
            DumpAccess(Access({Principal("gamma", "root", {"admin"})}, {used})));
}

TEST_F(SqliteAccessTest, FailingAccessChangeRollsBackTheWholeUnit) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  const std::string before = DumpAccess(Load());
  UnitOfWork unit;
  unit.Add(store_change::CreateTenant{testing::SampleTenant("gamma")})
      .Add(store_change::CreatePrincipal{Principal("gamma", "root", {"admin"})})
      .Add(store_change::SetPrincipalRoles{"acme", "alice", {"admin"}})
      .Add(store_change::RevokeApiKey{"acme", KeyIdText(1), 1700001000})
      .Add(store_change::DeletePrincipal{"acme", "nobody"});  // NOT_FOUND
  EXPECT_EQ(store_->Apply(unit).code(), Code::kNotFound);
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(DumpTenants(snapshot), "acme,beta,");
  EXPECT_EQ(DumpAccess(snapshot), before);

  UnitOfWork duplicate;
  duplicate.Add(store_change::DeletePrincipal{"acme", "alice"})
      .Add(store_change::CreatePrincipal{Principal("beta", "x")})
      .Add(store_change::CreatePrincipal{Principal("beta", "x")});  // ALREADY_EXISTS
  EXPECT_EQ(store_->Apply(duplicate).code(), Code::kAlreadyExists);
  EXPECT_EQ(DumpAccess(Load()), before);
}

// --- Shredding a tenant ------------------------------------------------------

TEST_F(SqliteAccessTest, ShredTenantForgetsItsPrincipalsAndApiKeysOnly) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreatePrincipal{Principal("acme", "bob")});
  MustWrite(store_change::CreatePrincipal{Principal("beta", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(2, "beta", "alice")});
  ASSERT_TRUE(store_->ShredTenant("acme", {"tenants/acme/keys/x"}, 1800000000).ok());
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(DumpTenants(snapshot), "beta,");
  EXPECT_EQ(DumpAccess(snapshot),
            DumpAccess(Access({Principal("beta", "alice")}, {ApiKey(2, "beta", "alice")})));
  EXPECT_EQ(snapshot.token_objects_to_destroy, std::vector<std::string>{"tenants/acme/keys/x"});
}

TEST_F(SqliteAccessTest, TenantRecreatedAfterShreddingHasNoPrincipals) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"admin"})});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
  UnitOfWork shred;
  shred.Add(store_change::ShredTenant{"acme", {}, 1800000000});
  ASSERT_TRUE(store_->Apply(shred).ok());
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(DumpTenants(snapshot), "acme,beta,");
  EXPECT_TRUE(snapshot.principals.empty());
  EXPECT_TRUE(snapshot.api_keys.empty());
  EXPECT_EQ(Write(store_change::CreateApiKey{ApiKey(1, "acme", "alice")}).code(), Code::kNotFound);
  EXPECT_EQ(Write(store_change::RevokeApiKey{"acme", KeyIdText(1), 1}).code(), Code::kNotFound);
  // The names are free again.
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"reader"})});
  MustWrite(store_change::CreateApiKey{ApiKey(1, "acme", "alice")});
}

// --- Migration, backup and restore -------------------------------------------

TEST(SqliteAccessMigrationTest, MigratesSchemaThreeKeystoreKeepingItsRecords) {
  testing::TempDir dir;
  const std::string path = dir / "keystore.db";
  {
    RawDb raw(path);
    raw.Exec("PRAGMA application_id = " + std::to_string(kKmsdApplicationId));
    raw.Exec("PRAGMA journal_mode = WAL");
    raw.Exec(frozen_schema::kVersion1);
    raw.Exec(frozen_schema::kVersions2And3);
    raw.Exec("INSERT INTO tenants VALUES ('acme', '', 1700000000, NULL)");
    raw.Exec(
        "INSERT INTO keys VALUES (x'a0000000000000000000000000000001', 'acme', 'orders', "
        "'key orders', 1700000100, 1, NULL, 'tenants/acme/keys/1', 86400, 1)");
    raw.Exec(
        "INSERT INTO key_versions VALUES (x'a0000000000000000000000000000001', 1, x'0102', "
        "1700000200, 17)");
    raw.Exec("INSERT INTO token_objects_to_destroy VALUES ('tenants/acme/keys/0', 1700000300)");
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 7);
  Result<KeyStoreSnapshot> snapshot = (*store)->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error().ToString();
  EXPECT_EQ(DumpTenants(*snapshot), "acme,");
  ASSERT_EQ(snapshot->keys.size(), 1u);
  EXPECT_EQ(snapshot->keys[0].rotation_period_seconds, 86400);
  ASSERT_EQ(snapshot->versions.size(), 1u);
  EXPECT_EQ(snapshot->versions[0].reserved_encryptions, 17u);  // not reset by migration 4
  EXPECT_EQ(snapshot->token_objects_to_destroy, std::vector<std::string>{"tenants/acme/keys/0"});
  EXPECT_TRUE(snapshot->principals.empty());
  EXPECT_TRUE(snapshot->api_keys.empty());

  // The new tables work on the migrated file.
  ASSERT_TRUE(
      (*store)->WriteAccess(store_change::CreatePrincipal{Principal("acme", "alice")}).ok());
  ASSERT_TRUE((*store)->WriteAccess(store_change::CreateApiKey{ApiKey(1, "acme", "alice")}).ok());
  EXPECT_EQ((*store)->WriteAccess(store_change::CreatePrincipal{Principal("nope", "a")}).code(),
            Code::kNotFound);
  store->reset();
  RawDb raw(path);
  EXPECT_EQ(raw.Text("SELECT group_concat(version) FROM schema_migrations"), "1,2,3,4,5,6,7");
  EXPECT_EQ(raw.Text("SELECT roles || '|' || uids || '|' || gids FROM principals"), "reader||");
  EXPECT_EQ(raw.Text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(raw.Text("PRAGMA foreign_key_check"), "");
}

TEST_F(SqliteAccessTest, ListsAreStoredAsCommaSeparatedText) {
  MustWrite(store_change::CreatePrincipal{
      Principal("acme", "alice", {"admin", "key-reader"}, {0, 1000}, {42})});
  store_.reset();
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("SELECT roles || '|' || uids || '|' || gids FROM principals"),
            "admin,key-reader|0,1000|42");
}

TEST_F(SqliteAccessTest, BackupAndRestoreKeepPrincipalsAndApiKeys) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice", {"admin"}, {1000}, {})});
  ApiKeyRecord key = ApiKey(1, "acme", "alice");
  key.expires_at = 1800000000;
  key.last_used_at = 1700000400;
  MustWrite(store_change::CreateApiKey{key});
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  const std::string before = DumpAccess(Load());
  MustWrite(store_change::CreatePrincipal{Principal("beta", "later")});
  store_.reset();

  Result<KeyStoreCopyInfo> info = RestoreSqliteKeyStore(backup, path_);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ(info->schema_version, 7);
  Reopen();
  EXPECT_EQ(DumpAccess(Load()), before);
  EXPECT_THAT(before, HasSubstr("acme/alice"));
  EXPECT_THAT(before, Not(HasSubstr("later")));
}

// A backup from before a revocation (or a deletion) must not make the key
// usable again.
TEST_F(SqliteAccessTest, RestoreRevokesKeysRevokedOrDeletedSinceTheBackup) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
  MustWrite(store_change::CreatePrincipal{Principal("acme", "bob")});
  for (int n : {1, 2}) MustWrite(store_change::CreateApiKey{ApiKey(n, "acme", "alice")});
  MustWrite(store_change::CreateApiKey{ApiKey(3, "acme", "bob")});
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  MustWrite(store_change::RevokeApiKey{"acme", KeyIdText(1), 1700000100});
  MustWrite(store_change::DeletePrincipal{"acme", "bob"});
  store_.reset();

  ASSERT_TRUE(RestoreSqliteKeyStore(backup, path_).has_value());
  Reopen();
  const KeyStoreSnapshot restored = Load();
  ASSERT_EQ(restored.principals.size(), 2u);  // bob is back, but his key is not usable
  std::map<std::string, std::optional<int64_t>> revoked;
  for (const ApiKeyRecord& k : restored.api_keys) revoked[k.id] = k.revoked_at;
  ASSERT_EQ(revoked.size(), 3u);
  EXPECT_TRUE(revoked[KeyIdText(1)].has_value());
  EXPECT_FALSE(revoked[KeyIdText(2)].has_value());
  EXPECT_TRUE(revoked[KeyIdText(3)].has_value());
}

}  // namespace
}  // namespace kmsd

namespace kmsd {
namespace {

// --- Custom roles and grants (schema 5) ---------------------------------------

RoleRecord StoredRole(const std::string& tenant, const std::string& name,
                      std::vector<std::string> inherits, std::vector<std::string> allow) {
  return {.tenant = tenant,
          .name = name,
          .inherits = std::move(inherits),
          .allow = std::move(allow),
          .created_at = 1700000300,
          .updated_at = 1700000301};
}

KeyId NumberedKeyId(uint8_t n) {
  KeyId id{};
  id[0] = 0x10;
  id[15] = n;
  return id;
}

GrantRecord Grant(int n, const std::string& tenant, const std::string& principal, uint8_t key) {
  return {.id = KeyIdText(n),
          .tenant = tenant,
          .principal = principal,
          .key_id = NumberedKeyId(key),
          .operations = {"encrypt", "decrypt"},
          .context = {{"purpose", "billing, the \"main\" one"}, {"tier", ""}},
          .created_at = 1700000400,
          .expires_at = 1800000000,
          .retired_at = std::nullopt};
}

std::string DumpRolesAndGrants(const KeyStoreSnapshot& s) {
  std::ostringstream out;
  for (const auto& r : s.roles) {
    out << "role " << r.tenant << "/" << r.name << " inherits=" << Join(r.inherits)
        << " allow=" << Join(r.allow) << " at=" << r.created_at << "," << r.updated_at << "\n";
  }
  for (const auto& g : s.grants) {
    out << "grant " << g.id << " " << g.tenant << "/" << g.principal
        << " key=" << KeyIdToHex(g.key_id) << " ops=" << Join(g.operations) << " context=";
    for (const auto& [k, v] : g.context) out << "[" << k << "=" << v << "]";
    out << " at=" << g.created_at << " expires=" << Time(g.expires_at)
        << " retired=" << Time(g.retired_at) << "\n";
  }
  return out.str();
}

class SqliteRolesGrantsTest : public SqliteAccessTest {
 protected:
  void SetUp() override {
    SqliteAccessTest::SetUp();
    for (uint8_t n : {1, 2}) {
      KeyRecord key{.id = NumberedKeyId(n),
                    .tenant = "acme",
                    .name = "key-" + std::to_string(n),
                    .description = "",
                    .created_at = 1700000000,
                    .enabled = true,
                    .deletion_due_at = {},
                    .kek_label = "tenants/acme/keys/" + std::to_string(n),
                    .rotation_period_seconds = {},
                    .min_decryption_version = 1};
      KeyVersionRecord version{.key_id = key.id,
                               .version = 1,
                               .wrapped = Bytes(40, n),
                               .created_at = 1700000000,
                               .reserved_encryptions = 0};
      ASSERT_TRUE(store_->CreateKey(key, version).ok());
    }
    MustWrite(store_change::CreatePrincipal{Principal("acme", "alice")});
    MustWrite(store_change::CreatePrincipal{Principal("acme", "bob")});
  }
};

TEST_F(SqliteRolesGrantsTest, RolesAndGrantsRoundTripEveryField) {
  const RoleRecord role = StoredRole("acme", "clerk", {"viewer", "base"},
                                     {"crypto:encrypt@key/key-1", "crypto:*@alias/cur", "*"});
  MustWrite(store_change::CreateRole{StoredRole("acme", "base", {}, {"key:read"})});
  MustWrite(store_change::CreateRole{role});
  MustWrite(store_change::CreateGrant{Grant(1, "acme", "alice", 1)});
  GrantRecord open_ended = Grant(2, "acme", "bob", 2);
  open_ended.context.clear();
  open_ended.expires_at.reset();
  MustWrite(store_change::CreateGrant{open_ended});
  Reopen();
  KeyStoreSnapshot expected;
  expected.roles = {StoredRole("acme", "base", {}, {"key:read"}), role};
  expected.grants = {Grant(1, "acme", "alice", 1), open_ended};
  EXPECT_EQ(DumpRolesAndGrants(Load()), DumpRolesAndGrants(expected));
}

TEST_F(SqliteRolesGrantsTest, EachRoleAndGrantChangeHasItsCode) {
  MustWrite(store_change::CreateRole{StoredRole("acme", "r", {"viewer"}, {})});
  EXPECT_EQ(Write(store_change::CreateRole{StoredRole("acme", "r", {"user"}, {})}).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(Write(store_change::CreateRole{StoredRole("nope", "r", {"user"}, {})}).code(),
            Code::kNotFound);
  EXPECT_EQ(Write(store_change::UpdateRole{StoredRole("acme", "ghost", {"user"}, {})}).code(),
            Code::kNotFound);
  EXPECT_EQ(Write(store_change::DeleteRole{"acme", "ghost"}).code(), Code::kNotFound);
  // Elements the comma-joined text could not hold.
  EXPECT_EQ(Write(store_change::CreateRole{StoredRole("acme", "s", {"a,b"}, {})}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Write(store_change::CreateRole{StoredRole("acme", "s", {}, {"key:read,x"})}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Write(store_change::CreateRole{StoredRole("acme", "s", {}, {""})}).code(),
            Code::kInvalidArgument);
  GrantRecord grant = Grant(1, "acme", "alice", 1);
  MustWrite(store_change::CreateGrant{grant});
  EXPECT_EQ(Write(store_change::CreateGrant{grant}).code(), Code::kAlreadyExists);
  EXPECT_EQ(Write(store_change::CreateGrant{Grant(2, "acme", "ghost", 1)}).code(), Code::kNotFound);
  EXPECT_EQ(Write(store_change::CreateGrant{Grant(3, "acme", "alice", 9)}).code(), Code::kNotFound);
  EXPECT_EQ(Write(store_change::CreateGrant{Grant(4, "beta", "alice", 1)}).code(),
            Code::kNotFound);  // beta has no alice and no such key
  GrantRecord no_ops = Grant(5, "acme", "alice", 1);
  no_ops.operations.clear();
  EXPECT_EQ(Write(store_change::CreateGrant{no_ops}).code(), Code::kInvalidArgument);
  EXPECT_EQ(Write(store_change::RetireGrant{"beta", grant.id, 1}).code(), Code::kNotFound);
  MustWrite(store_change::RetireGrant{"acme", grant.id, 1700000500});
  MustWrite(store_change::RetireGrant{"acme", grant.id, 1700000900});  // keeps the first
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.grants.size(), 1u);
  EXPECT_EQ(snapshot.grants[0].retired_at, std::optional<int64_t>(1700000500));
  ASSERT_EQ(snapshot.roles.size(), 1u);
  MustWrite(store_change::UpdateRole{StoredRole("acme", "r", {"user"}, {"key:read@key/x"})});
  MustWrite(store_change::DeleteRole{"acme", "r"});
  EXPECT_TRUE(Load().roles.empty());
}

TEST_F(SqliteRolesGrantsTest, DeletingThePrincipalOrShreddingTheKeyOrTenantDropsItsGrants) {
  MustWrite(store_change::CreateGrant{Grant(1, "acme", "alice", 1)});
  MustWrite(store_change::CreateGrant{Grant(2, "acme", "alice", 2)});
  MustWrite(store_change::CreateGrant{Grant(3, "acme", "bob", 2)});
  MustWrite(store_change::CreateRole{StoredRole("acme", "r", {"viewer"}, {})});
  MustWrite(store_change::DeletePrincipal{"acme", "alice"});
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.grants.size(), 1u);
  EXPECT_EQ(snapshot.grants[0].principal, "bob");
  ASSERT_TRUE(store_->ShredKey(NumberedKeyId(2), {"tenants/acme/keys/2"}, 1800000000).ok());
  EXPECT_TRUE(Load().grants.empty());
  MustWrite(store_change::CreateGrant{Grant(4, "acme", "bob", 1)});
  ASSERT_TRUE(store_->ShredTenant("acme", {}, 1800000000).ok());
  Reopen();
  snapshot = Load();
  EXPECT_TRUE(snapshot.grants.empty());
  EXPECT_TRUE(snapshot.roles.empty());
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("SELECT count(*) FROM grant_constraints"), "0");
  EXPECT_EQ(raw.Text("PRAGMA foreign_key_check"), "");
}

TEST_F(SqliteRolesGrantsTest, RestoreRetiresGrantsRetiredOrDeletedSinceTheBackup) {
  for (int n : {1, 2}) MustWrite(store_change::CreateGrant{Grant(n, "acme", "alice", 1)});
  MustWrite(store_change::CreateGrant{Grant(3, "acme", "bob", 2)});
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  MustWrite(store_change::RetireGrant{"acme", KeyIdText(1), 1700000500});
  MustWrite(store_change::DeletePrincipal{"acme", "bob"});
  store_.reset();

  ASSERT_TRUE(RestoreSqliteKeyStore(backup, path_).has_value());
  Reopen();
  std::map<std::string, std::optional<int64_t>> retired;
  for (const GrantRecord& g : Load().grants) retired[g.id] = g.retired_at;
  ASSERT_EQ(retired.size(), 3u);  // bob and his grant are back, but it allows nothing
  EXPECT_TRUE(retired[KeyIdText(1)].has_value());
  EXPECT_FALSE(retired[KeyIdText(2)].has_value());
  EXPECT_TRUE(retired[KeyIdText(3)].has_value());
}

TEST_F(SqliteRolesGrantsTest, TableConstraintsBackTheCallersChecks) {
  store_.reset();
  auto fails = [&](const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
    return rc != SQLITE_OK;
  };
  EXPECT_TRUE(fails("INSERT INTO roles VALUES ('acme', 'r', 'a,,b', '', 1, 1)"));
  EXPECT_TRUE(fails("INSERT INTO roles VALUES ('acme', 'r', '', 'key:read;drop', 1, 1)"));
  EXPECT_TRUE(fails("INSERT INTO roles VALUES ('ghost', 'r', '', '', 1, 1)"));
  EXPECT_TRUE(
      fails("INSERT INTO grants VALUES ('zz', 'acme', 'alice', zeroblob(16), 'encrypt', "
            "1, NULL, NULL)"));
  EXPECT_TRUE(
      fails("INSERT INTO grants VALUES ('0123456789abcdef', 'acme', 'alice', "
            "zeroblob(15), 'encrypt', 1, NULL, NULL)"));
  EXPECT_TRUE(
      fails("INSERT INTO grants VALUES ('0123456789abcdef', 'acme', 'alice', "
            "zeroblob(16), '', 1, NULL, NULL)"));
  EXPECT_TRUE(
      fails("INSERT INTO grants VALUES ('0123456789abcdef', 'acme', 'carol', "
            "zeroblob(16), 'encrypt', 1, NULL, NULL)"));
  EXPECT_TRUE(fails("INSERT INTO grant_constraints VALUES ('0123456789abcdef', 'a', 'b')"));
  EXPECT_FALSE(
      fails("INSERT INTO grants VALUES ('0123456789abcdef', 'acme', 'alice', "
            "zeroblob(16), 'encrypt,describe-key', 1, NULL, NULL)"));
}

// --- Tenant policies (schema 6) ---------------------------------------------

TEST_F(SqliteAccessTest, TenantPoliciesArePutReplacedAndGoWithTheirTenant) {
  const std::string document = "security_policies:\n  tenant_id: acme  # \u00e9\n";
  MustWrite(store_change::PutTenantPolicy{{"acme", "resource_quotas: {}\n", 1700000000}});
  MustWrite(store_change::PutTenantPolicy{{"acme", document, 1700000100}});
  MustWrite(store_change::PutTenantPolicy{{"beta", "resource_quotas: {}\n", 1700000200}});
  EXPECT_EQ(Write(store_change::PutTenantPolicy{{"ghost", document, 1}}).code(), Code::kNotFound);
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.policies.size(), 2u);
  EXPECT_EQ(snapshot.policies[0].tenant, "acme");
  EXPECT_EQ(snapshot.policies[0].document, document);  // byte for byte
  EXPECT_EQ(snapshot.policies[0].updated_at, 1700000100);
  EXPECT_EQ(snapshot.policies[1].tenant, "beta");

  // A backup carries them; shredding the tenant drops its policy.
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  ASSERT_TRUE(store_->ShredTenant("acme", {}, 1800000000).ok());
  snapshot = Load();
  ASSERT_EQ(snapshot.policies.size(), 1u);
  EXPECT_EQ(snapshot.policies[0].tenant, "beta");
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("PRAGMA foreign_key_check"), "");
  store_.reset();
  ASSERT_TRUE(RestoreSqliteKeyStore(backup, path_).has_value());
  Reopen();
  EXPECT_EQ(Load().policies.size(), 2u);
}

TEST_F(SqliteAccessTest, TheTenantPolicyTableRefusesWhatTheDaemonWouldNotWrite) {
  MustWrite(store_change::PutTenantPolicy{{"acme", std::string(65536, '#'), 1}});
  EXPECT_FALSE(Write(store_change::PutTenantPolicy{{"acme", std::string(65537, '#'), 2}}).ok());
  EXPECT_EQ(Load().policies.at(0).updated_at, 1);  // the refused write changed nothing
}

// --- TOTP seeds (schema 7) ----------------------------------------------------

TEST_F(SqliteAccessTest, TotpSeedsAreSetReplacedAndGoWithTheirPrincipal) {
  MustWrite(store_change::CreatePrincipal{Principal("acme", "app")});
  MustWrite(store_change::CreatePrincipal{Principal("acme", "ops")});
  MustWrite(store_change::SetMfaSeed{{"acme", "app", Bytes(60, 1), 1700000000}});
  MustWrite(store_change::SetMfaSeed{{"acme", "app", Bytes(61, 2), 1700000100}});
  MustWrite(store_change::SetMfaSeed{{"acme", "ops", Bytes(60, 3), 1700000200}});
  EXPECT_EQ(Write(store_change::SetMfaSeed{{"acme", "ghost", Bytes(60, 1), 1}}).code(),
            Code::kNotFound);
  EXPECT_FALSE(Write(store_change::SetMfaSeed{{"acme", "app", Bytes(), 1}}).ok());
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.mfa_seeds.size(), 2u);
  EXPECT_EQ(snapshot.mfa_seeds[0].principal, "app");
  EXPECT_EQ(snapshot.mfa_seeds[0].wrapped, Bytes(61, 2));
  EXPECT_EQ(snapshot.mfa_seeds[0].created_at, 1700000100);
  MustWrite(store_change::DeletePrincipal{"acme", "app"});
  snapshot = Load();
  ASSERT_EQ(snapshot.mfa_seeds.size(), 1u);
  EXPECT_EQ(snapshot.mfa_seeds[0].principal, "ops");
  ASSERT_TRUE(store_->ShredTenant("acme", {}, 1800000000).ok());
  EXPECT_TRUE(Load().mfa_seeds.empty());
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("PRAGMA foreign_key_check"), "");
}

}  // namespace
}  // namespace kmsd
