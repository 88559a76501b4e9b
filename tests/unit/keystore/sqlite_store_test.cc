#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "keystore/store.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/keystore/frozen_schemas.h"
#include "tests/unit/keystore/raw_db.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

using testing::kKmsdApplicationId;

// --- Records -----------------------------------------------------------------

KeyId Id(int n) {
  KeyId id{};
  id[0] = 0xa0;
  id[14] = static_cast<uint8_t>(n >> 8);
  id[15] = static_cast<uint8_t>(n);
  return id;
}

KeyRecord Key(const std::string& tenant, const std::string& name, int id) {
  return {.id = Id(id),
          .tenant = tenant,
          .name = name,
          .description = "key " + name,
          .created_at = 1700000100,
          .enabled = true,
          .deletion_due_at = std::nullopt,
          .kek_label = "tenants/" + tenant + "/keys/" + std::to_string(id),
          .rotation_period_seconds = std::nullopt,
          .min_decryption_version = 1};
}

// Wrapped bytes that differ per key and version and include zero bytes.
KeyVersionRecord Version(int id, uint32_t version) {
  Bytes wrapped(40);
  for (size_t i = 0; i < wrapped.size(); ++i) {
    wrapped[i] = static_cast<uint8_t>((i * 7 + static_cast<size_t>(id) * 13 + version) & 0xff);
  }
  wrapped[3] = 0;
  return {.key_id = Id(id), .version = version, .wrapped = wrapped, .created_at = 1700000200};
}

AliasRecord Alias(const std::string& tenant, const std::string& name, int id) {
  return {.tenant = tenant,
          .name = name,
          .key_id = Id(id),
          .created_at = 1700000300,
          .updated_at = 1700000300};
}

// One line per record, so a mismatch shows as a readable diff.
std::string Dump(const KeyStoreSnapshot& s) {
  std::ostringstream out;
  for (const auto& t : s.tenants) {
    out << "tenant " << t.name << " root=" << t.root_label << " at=" << t.created_at
        << " due=" << t.deletion_due_at.value_or(-1) << "\n";
  }
  for (const auto& k : s.keys) {
    out << "key " << KeyIdToHex(k.id) << " " << k.tenant << "/" << k.name
        << " desc=" << k.description << " at=" << k.created_at << " enabled=" << k.enabled
        << " due=" << k.deletion_due_at.value_or(-1) << " kek=" << k.kek_label
        << " rotation=" << k.rotation_period_seconds.value_or(-1)
        << " min=" << k.min_decryption_version << "\n";
  }
  for (const auto& v : s.versions) {
    out << "version " << KeyIdToHex(v.key_id) << " v" << v.version << " at=" << v.created_at
        << " reserved=" << v.reserved_encryptions << " wrapped=";
    for (uint8_t b : v.wrapped) out << static_cast<int>(b) << ",";
    out << "\n";
  }
  for (const auto& a : s.aliases) {
    out << "alias " << a.tenant << "/" << a.name << " -> " << KeyIdToHex(a.key_id)
        << " at=" << a.created_at << " updated=" << a.updated_at << "\n";
  }
  for (const auto& label : s.token_objects_to_destroy) out << "destroy " << label << "\n";
  return out.str();
}

// --- Raw SQLite access: tests/unit/keystore/raw_db.h ---------------------------

using testing::RawDb;

// --- Fixture -----------------------------------------------------------------

class SqliteKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

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

  // Tenant "acme" with key 1 ("orders", versions 1 and 2) and alias/orders.
  void CreateAcme() {
    ASSERT_TRUE(store_
                    ->CreateTenant(testing::SampleTenant("acme"), {Key("acme", "orders", 1)},
                                   {Version(1, 1), Version(1, 2)},
                                   {Alias("acme", "alias/orders", 1)})
                    .ok());
  }

  KeyStoreSnapshot AcmeSnapshot() {
    return {.tenants = {testing::SampleTenant("acme")},
            .keys = {Key("acme", "orders", 1)},
            .versions = {Version(1, 1), Version(1, 2)},
            .aliases = {Alias("acme", "alias/orders", 1)},
            .principals = {},
            .api_keys = {},
            .roles = {},
            .grants = {},
            .policies = {},
            .mfa_seeds = {},
            .token_objects_to_destroy = {}};
  }

  testing::TempDir dir_;
  std::string path_ = dir_ / "keystore.db";
  std::unique_ptr<KeyStore> store_;
};

// Opening files that are or are not keystores. These tests open the store
// themselves, so they use a path of their own.
class SqliteKeyStoreOpenTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_ / "keystore.db";
};

// --- Opening -----------------------------------------------------------------

TEST_F(SqliteKeyStoreOpenTest, CreatesFreshKeystoreWhenFileIsMissing) {
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 7);
  Result<KeyStoreSnapshot> snapshot = (*store)->LoadAll();
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(Dump(*snapshot), "");
}

TEST_F(SqliteKeyStoreOpenTest, InitialisesEmptyFile) {
  testing::WriteFileBytes(path_, "");
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 7);
}

TEST_F(SqliteKeyStoreOpenTest, NewKeystoreFileIsOwnerOnly) {
  ASSERT_TRUE(OpenSqliteKeyStore(path_).has_value());
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteKeyStoreOpenTest, MarksFileAsKmsdAndRecordsMigrations) {
  ASSERT_TRUE(OpenSqliteKeyStore(path_).has_value());
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("PRAGMA application_id"), std::to_string(kKmsdApplicationId));
  EXPECT_EQ(raw.Text("SELECT group_concat(version) FROM schema_migrations"), "1,2,3,4,5,6,7");
  EXPECT_NE(raw.Text("SELECT applied_at FROM schema_migrations WHERE version = 1"), "");
}

TEST_F(SqliteKeyStoreOpenTest, FailsWhenDirectoryIsMissing) {
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(dir_ / "missing/keystore.db");
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("missing/keystore.db"));
}

TEST_F(SqliteKeyStoreOpenTest, RejectsFileThatIsNotADatabase) {
  const std::string text = "tenants:\n  acme: {root: acme-root}\n" + std::string(600, '#');
  testing::WriteFileBytes(path_, text);
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_EQ(store.error().message(),
            "keystore " + path_ + ": not a kmsd keystore: file is not a database");
  EXPECT_EQ(testing::ReadFileBytes(path_), text);  // never recreated
}

TEST_F(SqliteKeyStoreOpenTest, RejectsShortTextFile) {
  testing::WriteFileBytes(path_, "hello\n");
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("file is not a database"));
  EXPECT_EQ(testing::ReadFileBytes(path_), "hello\n");
}

TEST_F(SqliteKeyStoreOpenTest, RejectsRandomBytes) {
  std::mt19937 rng(42);
  std::string bytes(8192, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  testing::WriteFileBytes(path_, bytes);
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("not a kmsd keystore: file is not a database"));
  EXPECT_EQ(testing::ReadFileBytes(path_), bytes);
}

TEST_F(SqliteKeyStoreOpenTest, RejectsSqliteDatabaseWithoutKmsdApplicationId) {
  {
    RawDb raw(path_);
    raw.Exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)");
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("not a kmsd keystore"));

  RawDb raw(path_);  // left untouched: no WAL switch, no kmsd tables
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "delete");
  EXPECT_EQ(raw.Text("PRAGMA application_id"), "0");
  EXPECT_EQ(raw.Text("SELECT group_concat(name) FROM sqlite_master"), "photos");
}

TEST_F(SqliteKeyStoreOpenTest, RejectsSqliteDatabaseOfAnotherApplication) {
  {
    RawDb raw(path_);
    raw.Exec("PRAGMA application_id = 305419896");  // 0x12345678, no tables
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("application_id 0x12345678"));
}

TEST_F(SqliteKeyStoreOpenTest, RefusesNewerSchema) {
  int latest = 0;
  {
    auto opened = OpenSqliteKeyStore(path_);
    ASSERT_TRUE(opened.has_value());
    latest = (*opened)->SchemaVersion();
  }
  {
    RawDb raw(path_);
    raw.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (" +
             std::to_string(latest + 1) + ", 0)");
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("written by a newer kmsd"));
  EXPECT_THAT(store.error().message(),
              HasSubstr("schema version " + std::to_string(latest + 1) +
                        ", this kmsd knows up to " + std::to_string(latest)));
}

TEST_F(SqliteKeyStoreOpenTest, RefusesKeystoreWithoutSchemaVersion) {
  ASSERT_TRUE(OpenSqliteKeyStore(path_).has_value());
  {
    RawDb raw(path_);
    raw.Exec("DELETE FROM schema_migrations");
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), Code::kInternal);
  EXPECT_THAT(store.error().message(), HasSubstr("no schema version"));
}

// SQLite calls every registered auto-extension with each new connection, which
// lets the test reach the store's own connection: synchronous, foreign_keys and
// busy_timeout are settings of a connection, invisible from any other.
sqlite3* g_store_connection = nullptr;
int CaptureConnection(sqlite3* db, const char**, const sqlite3_api_routines*) {
  g_store_connection = db;
  return SQLITE_OK;
}

TEST_F(SqliteKeyStoreOpenTest, UsesWalAndFullSync) {
  g_store_connection = nullptr;
  ASSERT_EQ(sqlite3_auto_extension(reinterpret_cast<void (*)()>(&CaptureConnection)), SQLITE_OK);
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  sqlite3_reset_auto_extension();
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  ASSERT_NE(g_store_connection, nullptr);

  EXPECT_EQ(RawDb::Query(g_store_connection, "PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(RawDb::Query(g_store_connection, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(RawDb::Query(g_store_connection, "PRAGMA busy_timeout"), "5000");

  RawDb other(path_);  // WAL is a property of the file
  EXPECT_EQ(other.Text("PRAGMA journal_mode"), "wal");
}

// --- Durability ----------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, ReopenKeepsEverything) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateKey(Key("acme", "billing", 2), Version(2, 1)).ok());
  ASSERT_TRUE(store_->AddKeyVersion(Version(2, 2)).ok());
  ASSERT_TRUE(store_->CreateAlias(Alias("acme", "alias/billing", 2)).ok());
  ASSERT_TRUE(store_->UpdateAlias("acme", "alias/orders", Id(2), 1700000999).ok());
  KeyStoreSnapshot before = Load();

  Reopen();
  EXPECT_EQ(store_->SchemaVersion(), 7);
  EXPECT_EQ(Dump(Load()), Dump(before));
}

TEST_F(SqliteKeyStoreTest, KeepsWrappedBytesExactly) {
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
  KeyVersionRecord version = Version(1, 1);
  version.wrapped.assign(256, 0);
  for (size_t i = 0; i < version.wrapped.size(); ++i) version.wrapped[i] = static_cast<uint8_t>(i);
  ASSERT_TRUE(store_->CreateKey(Key("acme", "orders", 1), version).ok());
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.versions.size(), 1u);
  EXPECT_EQ(snapshot.versions[0].wrapped, version.wrapped);
}

TEST_F(SqliteKeyStoreTest, LoadAllReturnsRecordsInOrder) {
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("zeta"), {}, {}, {}).ok());
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
  ASSERT_TRUE(store_->CreateKey(Key("zeta", "a", 3), Version(3, 1)).ok());
  ASSERT_TRUE(store_->CreateKey(Key("acme", "b", 1), Version(1, 1)).ok());
  ASSERT_TRUE(store_->CreateKey(Key("acme", "a", 2), Version(2, 1)).ok());
  ASSERT_TRUE(store_->AddKeyVersion(Version(3, 2)).ok());
  ASSERT_TRUE(store_->AddKeyVersion(Version(1, 2)).ok());
  ASSERT_TRUE(store_->CreateAlias(Alias("zeta", "alias/x", 3)).ok());
  ASSERT_TRUE(store_->CreateAlias(Alias("acme", "alias/y", 1)).ok());
  ASSERT_TRUE(store_->CreateAlias(Alias("acme", "alias/x", 2)).ok());

  KeyStoreSnapshot expected = {
      .tenants = {testing::SampleTenant("acme"), testing::SampleTenant("zeta")},
      .keys = {Key("acme", "a", 2), Key("acme", "b", 1), Key("zeta", "a", 3)},
      .versions = {Version(1, 1), Version(1, 2), Version(2, 1), Version(3, 1), Version(3, 2)},
      .aliases = {Alias("acme", "alias/x", 2), Alias("acme", "alias/y", 1),
                  Alias("zeta", "alias/x", 3)},
      .principals = {},
      .api_keys = {},
      .roles = {},
      .grants = {},
      .policies = {},
      .mfa_seeds = {},
      .token_objects_to_destroy = {}};
  EXPECT_EQ(Dump(Load()), Dump(expected));
}

// --- CreateTenant ------------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, CreateTenantStoresEveryRecord) {
  CreateAcme();
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, DuplicateTenantIsAlreadyExists) {
  CreateAcme();
  Status status = store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

// The second alias fails after the tenant, keys, versions and first alias are
// written; the whole tenant must be gone.
TEST_F(SqliteKeyStoreTest, CreateTenantIsAllOrNothing) {
  CreateAcme();
  Status status = store_->CreateTenant(
      testing::SampleTenant("globex"), {Key("globex", "a", 10), Key("globex", "b", 11)},
      {Version(10, 1), Version(11, 1)},
      {Alias("globex", "alias/a", 10), Alias("globex", "alias/a", 11)});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));

  // Nothing of it blocks a correct retry.
  EXPECT_TRUE(store_
                  ->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                                 {Version(10, 1)}, {Alias("globex", "alias/a", 10)})
                  .ok());
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithKeyIdOfAnotherTenantIsAlreadyExists) {
  CreateAcme();
  Status status =
      store_->CreateTenant(testing::SampleTenant("globex"),
                           {Key("globex", "a", 10), Key("globex", "b", 1)}, {Version(10, 1)}, {});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithDuplicateKeyNameIsAlreadyExists) {
  Status status = store_->CreateTenant(testing::SampleTenant("globex"),
                                       {Key("globex", "a", 10), Key("globex", "a", 11)}, {}, {});
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Dump(Load()), "");
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithAliasToKeyOutsideBatchIsNotFound) {
  CreateAcme();
  // Key 1 exists, but in acme: globex's alias may not point at it.
  Status status = store_->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                                       {Version(10, 1)}, {Alias("globex", "alias/a", 1)});
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithVersionOfKeyOutsideBatchIsNotFound) {
  CreateAcme();
  Status status = store_->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                                       {Version(10, 1), Version(1, 3)}, {});
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithRecordOfAnotherTenantIsInvalidArgument) {
  Status key_status = store_->CreateTenant(testing::SampleTenant("globex"), {Key("acme", "a", 10)},
                                           {Version(10, 1)}, {});
  EXPECT_EQ(key_status.code(), Code::kInvalidArgument);
  Status alias_status =
      store_->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                           {Version(10, 1)}, {Alias("acme", "alias/a", 10)});
  EXPECT_EQ(alias_status.code(), Code::kInvalidArgument);
  EXPECT_EQ(Dump(Load()), "");
}

TEST_F(SqliteKeyStoreTest, CreateTenantWithVersionZeroIsInvalidArgument) {
  Status status = store_->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                                       {Version(10, 0)}, {});
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(Dump(Load()), "");
}

// --- CreateKey -------------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, CreateKeyStoresKeyAndFirstVersion) {
  CreateAcme();
  KeyRecord key = Key("acme", "billing", 2);
  key.enabled = false;
  ASSERT_TRUE(store_->CreateKey(key, Version(2, 1)).ok());
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.keys.insert(expected.keys.begin(), key);  // "billing" < "orders"
  expected.versions.push_back(Version(2, 1));
  EXPECT_EQ(Dump(Load()), Dump(expected));
}

TEST_F(SqliteKeyStoreTest, CreateKeyInMissingTenantIsNotFound) {
  Status status = store_->CreateKey(Key("nobody", "a", 2), Version(2, 1));
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), "");
}

TEST_F(SqliteKeyStoreTest, DuplicateKeyNameIsAlreadyExists) {
  CreateAcme();
  Status status = store_->CreateKey(Key("acme", "orders", 2), Version(2, 1));
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, SameKeyNameInAnotherTenantIsAllowed) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("globex"), {}, {}, {}).ok());
  EXPECT_TRUE(store_->CreateKey(Key("globex", "orders", 2), Version(2, 1)).ok());
}

TEST_F(SqliteKeyStoreTest, DuplicateKeyIdIsAlreadyExists) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("globex"), {}, {}, {}).ok());
  Status status = store_->CreateKey(Key("globex", "other", 1), Version(1, 1));
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Load().keys.size(), 1u);
}

TEST_F(SqliteKeyStoreTest, CreateKeyWithVersionOfAnotherKeyIsInvalidArgument) {
  CreateAcme();
  Status status = store_->CreateKey(Key("acme", "billing", 2), Version(3, 1));
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateKeyWithVersionZeroIsInvalidArgument) {
  CreateAcme();
  Status status = store_->CreateKey(Key("acme", "billing", 2), Version(2, 0));
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

// --- AddKeyVersion -----------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, AddKeyVersionAppendsVersion) {
  CreateAcme();
  ASSERT_TRUE(store_->AddKeyVersion(Version(1, 3)).ok());
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.versions.push_back(Version(1, 3));
  EXPECT_EQ(Dump(Load()), Dump(expected));
}

TEST_F(SqliteKeyStoreTest, AddKeyVersionToMissingKeyIsNotFound) {
  CreateAcme();
  Status status = store_->AddKeyVersion(Version(9, 1));
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, DuplicateKeyVersionIsAlreadyExists) {
  CreateAcme();
  KeyVersionRecord again = Version(1, 2);
  again.wrapped = Bytes(40, 0xee);
  Status status = store_->AddKeyVersion(again);
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(status.message(), "key " + KeyIdToHex(Id(1)) + " version 2 already exists");
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));  // original bytes kept
}

TEST_F(SqliteKeyStoreTest, AddKeyVersionZeroIsInvalidArgument) {
  CreateAcme();
  Status status = store_->AddKeyVersion(Version(1, 0));
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

// --- Aliases -------------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, CreateAliasPointsAtKey) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateAlias(Alias("acme", "alias/second", 1)).ok());
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.aliases.push_back(Alias("acme", "alias/second", 1));
  EXPECT_EQ(Dump(Load()), Dump(expected));
}

TEST_F(SqliteKeyStoreTest, DuplicateAliasIsAlreadyExists) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateKey(Key("acme", "billing", 2), Version(2, 1)).ok());
  Status status = store_->CreateAlias(Alias("acme", "alias/orders", 2));
  EXPECT_EQ(status.code(), Code::kAlreadyExists);
  EXPECT_EQ(Load().aliases[0].key_id, Id(1));
}

TEST_F(SqliteKeyStoreTest, CreateAliasToMissingKeyIsNotFound) {
  CreateAcme();
  Status status = store_->CreateAlias(Alias("acme", "alias/ghost", 9));
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateAliasInMissingTenantIsNotFound) {
  CreateAcme();
  Status status = store_->CreateAlias(Alias("nobody", "alias/orders", 1));
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, CreateAliasToKeyOfAnotherTenantIsNotFound) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("globex"), {}, {}, {}).ok());
  Status status = store_->CreateAlias(Alias("globex", "alias/stolen", 1));
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Load().aliases.size(), 1u);
}

TEST_F(SqliteKeyStoreTest, UpdateAliasRepointsAlias) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateKey(Key("acme", "billing", 2), Version(2, 1)).ok());
  ASSERT_TRUE(store_->UpdateAlias("acme", "alias/orders", Id(2), 1700000999).ok());
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.aliases.size(), 1u);
  EXPECT_EQ(snapshot.aliases[0].key_id, Id(2));
  EXPECT_EQ(snapshot.aliases[0].created_at, 1700000300);
  EXPECT_EQ(snapshot.aliases[0].updated_at, 1700000999);
}

TEST_F(SqliteKeyStoreTest, UpdateMissingAliasIsNotFound) {
  CreateAcme();
  Status status = store_->UpdateAlias("acme", "alias/ghost", Id(1), 1700000999);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, UpdateAliasToMissingKeyIsNotFound) {
  CreateAcme();
  Status status = store_->UpdateAlias("acme", "alias/orders", Id(9), 1700000999);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, UpdateAliasToKeyOfAnotherTenantIsNotFound) {
  CreateAcme();
  ASSERT_TRUE(store_
                  ->CreateTenant(testing::SampleTenant("globex"), {Key("globex", "a", 10)},
                                 {Version(10, 1)}, {})
                  .ok());
  Status status = store_->UpdateAlias("acme", "alias/orders", Id(10), 1700000999);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(Load().aliases[0].key_id, Id(1));
}

TEST_F(SqliteKeyStoreTest, DeleteAliasRemovesIt) {
  CreateAcme();
  ASSERT_TRUE(store_->DeleteAlias("acme", "alias/orders").ok());
  EXPECT_TRUE(Load().aliases.empty());
  // The name is free again.
  EXPECT_TRUE(store_->CreateAlias(Alias("acme", "alias/orders", 1)).ok());
}

TEST_F(SqliteKeyStoreTest, DeleteMissingAliasIsNotFound) {
  CreateAcme();
  EXPECT_EQ(store_->DeleteAlias("acme", "alias/ghost").code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteAlias("nobody", "alias/orders").code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

// --- Threads ---------------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, ConcurrentWritersFromThreads) {
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
  constexpr int kThreads = 8;
  constexpr int kKeysPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeysPerThread; ++i) {
        int id = t * kKeysPerThread + i + 1;
        std::string name = "k" + std::to_string(id);
        if (!store_->CreateKey(Key("acme", name, id), Version(id, 1)).ok()) ++failures;
        if (!store_->AddKeyVersion(Version(id, 2)).ok()) ++failures;
        if (!store_->CreateAlias(Alias("acme", "alias/" + name, id)).ok()) ++failures;
        if (!store_->LoadAll().has_value()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  Reopen();
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(snapshot.keys.size(), size_t{kThreads * kKeysPerThread});
  EXPECT_EQ(snapshot.versions.size(), size_t{2 * kThreads * kKeysPerThread});
  EXPECT_EQ(snapshot.aliases.size(), size_t{kThreads * kKeysPerThread});
}

TEST_F(SqliteKeyStoreTest, ConcurrentCreateOfOneAliasHasOneWinner) {
  CreateAcme();
  constexpr int kThreads = 8;
  std::atomic<int> created{0};
  std::atomic<int> already_exists{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Status status = store_->CreateAlias(Alias("acme", "alias/contested", 1));
      if (status.ok()) ++created;
      if (status.code() == Code::kAlreadyExists) ++already_exists;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(already_exists.load(), kThreads - 1);
}

}  // namespace
}  // namespace kmsd

namespace kmsd {
namespace {

// --- Schema migration ----------------------------------------------------------

TEST_F(SqliteKeyStoreOpenTest, MigratesVersionOneKeystoreKeepingItsRecords) {
  {
    RawDb raw(path_);
    raw.Exec("PRAGMA application_id = " + std::to_string(kKmsdApplicationId));
    raw.Exec("PRAGMA journal_mode = WAL");
    raw.Exec(frozen_schema::kVersion1);
    raw.Exec("INSERT INTO tenants VALUES ('acme', 'root/acme', 1700000000)");
    raw.Exec(
        "INSERT INTO keys VALUES (x'a0000000000000000000000000000001', 'acme', 'orders', "
        "'key orders', 1700000100, 1)");
    raw.Exec(
        "INSERT INTO keys VALUES (x'a0000000000000000000000000000002', 'acme', 'billing', "
        "'key billing', 1700000100, 0)");
    raw.Exec(
        "INSERT INTO key_versions VALUES (x'a0000000000000000000000000000001', 1, x'0102', "
        "1700000200)");
    raw.Exec(
        "INSERT INTO key_versions VALUES (x'a0000000000000000000000000000002', 1, x'0304', "
        "1700000200)");
    raw.Exec(
        "INSERT INTO aliases VALUES ('acme', 'alias/orders', x'a0000000000000000000000000000001', "
        "1700000300, 1700000300)");
  }
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path_);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 7);
  Result<KeyStoreSnapshot> snapshot = (*store)->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error().ToString();
  // Keys from before schema 3 have no KEK of their own.
  KeyRecord billing = Key("acme", "billing", 2);
  billing.enabled = false;
  billing.kek_label = "";
  KeyRecord orders = Key("acme", "orders", 1);
  orders.kek_label = "";
  KeyStoreSnapshot expected{.tenants = {testing::SampleTenant("acme")},
                            .keys = {billing, orders},
                            // How many encryptions they did is unknown: all count as used.
                            .versions = {{Id(1), 1, {1, 2}, 1700000200, kAllEncryptionsReserved},
                                         {Id(2), 1, {3, 4}, 1700000200, kAllEncryptionsReserved}},
                            .aliases = {Alias("acme", "alias/orders", 1)},
                            .principals = {},
                            .api_keys = {},
                            .roles = {},
                            .grants = {},
                            .policies = {},
                            .mfa_seeds = {},
                            .token_objects_to_destroy = {}};
  EXPECT_EQ(Dump(*snapshot), Dump(expected));

  // The new columns work on the migrated records.
  ASSERT_TRUE((*store)->ScheduleKeyDeletion(Id(1), 1800000000).ok());
  ASSERT_TRUE((*store)->ScheduleTenantDeletion("acme", 1800000001).ok());
  store->reset();
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("SELECT group_concat(version) FROM schema_migrations"), "1,2,3,4,5,6,7");
  EXPECT_EQ(raw.Text("SELECT enabled || ',' || deletion_due_at FROM keys WHERE name = 'orders'"),
            "0,1800000000");
  EXPECT_EQ(raw.Text("SELECT deletion_due_at FROM tenants"), "1800000001");
}

// --- Lifecycle -----------------------------------------------------------------

TEST_F(SqliteKeyStoreTest, SetKeyEnabledIsDurable) {
  CreateAcme();
  ASSERT_TRUE(store_->SetKeyEnabled(Id(1), false).ok());
  Reopen();
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.keys[0].enabled = false;
  EXPECT_EQ(Dump(Load()), Dump(expected));
  ASSERT_TRUE(store_->SetKeyEnabled(Id(1), true).ok());
  Reopen();
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, ScheduleKeyDeletionDisablesAndCancelLeavesDisabled) {
  CreateAcme();
  ASSERT_TRUE(store_->ScheduleKeyDeletion(Id(1), 1800000000).ok());
  Reopen();
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.keys[0].enabled = false;
  expected.keys[0].deletion_due_at = 1800000000;
  EXPECT_EQ(Dump(Load()), Dump(expected));

  ASSERT_TRUE(store_->CancelKeyDeletion(Id(1)).ok());
  Reopen();
  expected.keys[0].deletion_due_at.reset();
  EXPECT_EQ(Dump(Load()), Dump(expected));
}

TEST_F(SqliteKeyStoreTest, EnablingAKeyPendingDeletionIsRefusedAndChangesNothing) {
  CreateAcme();
  ASSERT_TRUE(store_->ScheduleKeyDeletion(Id(1), 1800000000).ok());
  const std::string before = Dump(Load());
  Status status = store_->SetKeyEnabled(Id(1), true);
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("CHECK constraint failed"));
  EXPECT_EQ(Dump(Load()), before);
}

TEST_F(SqliteKeyStoreTest, TenantDeletionScheduleAndCancelAreDurable) {
  CreateAcme();
  ASSERT_TRUE(store_->ScheduleTenantDeletion("acme", 1800000000).ok());
  Reopen();
  KeyStoreSnapshot expected = AcmeSnapshot();
  expected.tenants[0].deletion_due_at = 1800000000;
  EXPECT_EQ(Dump(Load()), Dump(expected));
  ASSERT_TRUE(store_->CancelTenantDeletion("acme").ok());
  Reopen();
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, LifecycleChangesOfMissingRecordsAreNotFound) {
  CreateAcme();
  const std::string before = Dump(Load());
  EXPECT_EQ(store_->SetKeyEnabled(Id(9), false).code(), Code::kNotFound);
  EXPECT_EQ(store_->ScheduleKeyDeletion(Id(9), 1800000000).code(), Code::kNotFound);
  EXPECT_EQ(store_->CancelKeyDeletion(Id(9)).code(), Code::kNotFound);
  EXPECT_EQ(store_->ScheduleTenantDeletion("globex", 1800000000).code(), Code::kNotFound);
  EXPECT_EQ(store_->CancelTenantDeletion("globex").code(), Code::kNotFound);
  EXPECT_EQ(Dump(Load()), before);
}

TEST_F(SqliteKeyStoreTest, CreateTenantKeepsLifecycleFieldsOfItsRecords) {
  TenantRecord tenant = testing::SampleTenant("acme");
  tenant.deletion_due_at = 1800000000;
  KeyRecord key = Key("acme", "orders", 1);
  key.enabled = false;
  key.deletion_due_at = 1800000001;
  ASSERT_TRUE(store_->CreateTenant(tenant, {key}, {Version(1, 1)}, {}).ok());
  Reopen();
  EXPECT_EQ(Dump(Load()), Dump({.tenants = {tenant},
                                .keys = {key},
                                .versions = {Version(1, 1)},
                                .aliases = {},
                                .principals = {},
                                .api_keys = {},
                                .roles = {},
                                .grants = {},
                                .policies = {},
                                .mfa_seeds = {},
                                .token_objects_to_destroy = {}}));
}

// --- Backup and restore -------------------------------------------------------

// Names in `dir` other than `keep`: a temporary file left behind shows here.
std::vector<std::string> OtherFiles(const std::string& dir, const std::set<std::string>& keep) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (!keep.contains(name)) names.push_back(name);
  }
  return names;
}

KeyStoreSnapshot LoadFile(const std::string& path) {
  Result<std::unique_ptr<KeyStore>> store = OpenSqliteKeyStore(path);
  EXPECT_TRUE(store.has_value()) << store.error().ToString();
  if (!store.has_value()) return {};
  Result<KeyStoreSnapshot> snapshot = (*store)->LoadAll();
  EXPECT_TRUE(snapshot.has_value());
  return snapshot.has_value() ? std::move(*snapshot) : KeyStoreSnapshot{};
}

TEST_F(SqliteKeyStoreTest, BackupCopiesEveryRecordIntoOneOwnerOnlyFile) {
  CreateAcme();
  ASSERT_TRUE(
      store_
          ->CreateTenant(testing::SampleTenant("beta"), {Key("beta", "b", 2)}, {Version(2, 1)}, {})
          .ok());
  const std::string backup = dir_ / "backup.db";
  Result<KeyStoreCopyInfo> info = store_->Backup(backup);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ(info->path, backup);
  EXPECT_EQ(info->bytes, std::filesystem::file_size(backup));
  EXPECT_EQ(info->schema_version, 7);
  EXPECT_EQ(info->tenants, 2);
  EXPECT_EQ(info->keys, 2);
  struct stat st;
  ASSERT_EQ(stat(backup.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(OtherFiles(dir_.path().string(),
                         {"keystore.db", "keystore.db-wal", "keystore.db-shm", "backup.db"}),
              ::testing::IsEmpty());
  {
    RawDb raw(backup);
    EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "delete");
  }
  EXPECT_EQ(Dump(LoadFile(backup)), Dump(Load()));
}

TEST_F(SqliteKeyStoreTest, BackupRefusesExistingTarget) {
  CreateAcme();
  const std::string backup = dir_ / "backup.db";
  testing::WriteFileBytes(backup, "precious");
  Result<KeyStoreCopyInfo> info = store_->Backup(backup);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kAlreadyExists);
  EXPECT_EQ(testing::ReadFileBytes(backup), "precious");
  EXPECT_THAT(OtherFiles(dir_.path().string(),
                         {"keystore.db", "keystore.db-wal", "keystore.db-shm", "backup.db"}),
              ::testing::IsEmpty());
}

TEST_F(SqliteKeyStoreTest, BackupRefusesRelativePath) {
  Result<KeyStoreCopyInfo> info = store_->Backup("backup.db");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists("backup.db"));
}

TEST_F(SqliteKeyStoreTest, BackupIntoMissingDirectoryIsInternal) {
  Result<KeyStoreCopyInfo> info = store_->Backup(dir_ / "missing/backup.db");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInternal);
}

TEST_F(SqliteKeyStoreTest, BackupNeverFollowsASymlink) {
  CreateAcme();
  std::filesystem::create_directory(dir_ / "real");
  std::filesystem::create_directory_symlink(dir_ / "real", dir_ / "link");
  Result<KeyStoreCopyInfo> info = store_->Backup(dir_ / "link/backup.db");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(info.error().message(), HasSubstr("is a symlink"));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "real"));

  std::filesystem::create_symlink(dir_ / "target.db", dir_ / "planted.db");
  info = store_->Backup(dir_ / "planted.db");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "target.db"));
  EXPECT_THAT(OtherFiles(dir_.path().string(), {"keystore.db", "keystore.db-wal", "keystore.db-shm",
                                                "real", "link", "planted.db"}),
              ::testing::IsEmpty());
}

TEST_F(SqliteKeyStoreTest, BackupWhileAnotherThreadWritesIsConsistent) {
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int id = 1; !stop && id < 5000; ++id) {
      std::string name = "k" + std::to_string(id);
      if (!store_->CreateKey(Key("acme", name, id), Version(id, 1)).ok()) break;
      if (!store_->CreateAlias(Alias("acme", "alias/" + name, id)).ok()) break;
      ++written;
    }
  });
  while (written < 50) std::this_thread::yield();
  const std::string backup = dir_ / "backup.db";
  Result<KeyStoreCopyInfo> info = store_->Backup(backup);
  stop = true;
  writer.join();
  ASSERT_TRUE(info.has_value()) << info.error().ToString();

  KeyStoreSnapshot copy = LoadFile(backup);
  EXPECT_EQ(static_cast<int64_t>(copy.keys.size()), info->keys);
  EXPECT_GE(copy.keys.size(), 50u);
  EXPECT_LE(copy.keys.size(), static_cast<size_t>(written.load()) + 1);
  // Each key came with its version in one transaction: never one without the other.
  EXPECT_EQ(copy.versions.size(), copy.keys.size());
  // Aliases are a later transaction: at most the last key lacks one.
  EXPECT_GE(copy.aliases.size() + 1, copy.keys.size());
}

// What a restored keystore holds: the backup, with every reservation used up.
KeyStoreSnapshot AsRestored(KeyStoreSnapshot snapshot) {
  for (auto& version : snapshot.versions) version.reserved_encryptions = kAllEncryptionsReserved;
  return snapshot;
}

TEST_F(SqliteKeyStoreTest, RestoreReplacesKeystoreWithBackup) {
  CreateAcme();
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  const std::string before = Dump(AsRestored(Load()));
  ASSERT_TRUE(store_->CreateTenant(testing::SampleTenant("later"), {}, {}, {}).ok());
  store_.reset();

  Result<KeyStoreCopyInfo> info = RestoreSqliteKeyStore(backup, path_);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ(info->path, path_);
  EXPECT_EQ(info->tenants, 1);
  EXPECT_EQ(info->keys, 1);
  Reopen();
  EXPECT_EQ(Dump(Load()), before);
  EXPECT_THAT(OtherFiles(dir_.path().string(),
                         {"keystore.db", "keystore.db-wal", "keystore.db-shm", "backup.db"}),
              ::testing::IsEmpty());
}

// A crashed kmsd leaves a -wal beside the keystore; its frames must not be
// replayed onto the restored file.
TEST_F(SqliteKeyStoreTest, RestoreIgnoresStaleWalOfOldKeystore) {
  CreateAcme();
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  const std::string before = Dump(AsRestored(Load()));
  ASSERT_TRUE(store_
                  ->CreateTenant(testing::SampleTenant("later"), {Key("later", "x", 9)},
                                 {Version(9, 1)}, {})
                  .ok());
  const std::string wal = testing::ReadFileBytes(path_ + "-wal");
  ASSERT_FALSE(wal.empty());
  store_.reset();
  testing::WriteFileBytes(path_ + "-wal", wal);

  ASSERT_TRUE(RestoreSqliteKeyStore(backup, path_).has_value());
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal") &&
               std::filesystem::file_size(path_ + "-wal") > 0);
  Reopen();
  EXPECT_EQ(Dump(Load()), before);
  RawDb raw(path_);
  EXPECT_EQ(raw.Text("PRAGMA integrity_check"), "ok");
}

TEST_F(SqliteKeyStoreTest, RestoreOfFileThatIsNotAKeystoreLeavesKeystoreUnchanged) {
  CreateAcme();
  store_.reset();
  const std::string keystore_bytes = testing::ReadFileBytes(path_);
  const std::string text = dir_ / "notes.txt";
  testing::WriteFileBytes(
      text, "not a database, just some words that are long enough to be a header....");
  const std::string empty = dir_ / "empty.db";
  testing::WriteFileBytes(empty, "");
  const std::string other = dir_ / "other.db";
  {
    RawDb raw(other);
    raw.Exec("CREATE TABLE t (x INTEGER)");
  }
  for (const std::string& file : {text, empty, other}) {
    Result<KeyStoreCopyInfo> info = RestoreSqliteKeyStore(file, path_);
    ASSERT_FALSE(info.has_value()) << file;
    EXPECT_EQ(info.error().code(), Code::kInvalidArgument) << file;
    EXPECT_THAT(info.error().message(), HasSubstr("not a kmsd keystore")) << file;
    EXPECT_EQ(testing::ReadFileBytes(path_), keystore_bytes) << file;
  }
  EXPECT_THAT(OtherFiles(dir_.path().string(), {"keystore.db", "keystore.db-wal", "keystore.db-shm",
                                                "notes.txt", "empty.db", "other.db"}),
              ::testing::IsEmpty());
  Reopen();
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

TEST_F(SqliteKeyStoreTest, RestoreOfMissingBackupIsNotFound) {
  CreateAcme();
  store_.reset();
  Result<KeyStoreCopyInfo> info = RestoreSqliteKeyStore(dir_ / "missing.db", path_);
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kNotFound);
  Reopen();
  EXPECT_EQ(Dump(Load()), Dump(AcmeSnapshot()));
}

}  // namespace
}  // namespace kmsd

namespace kmsd {
namespace {

// --- Schema 3: shredding queue, rotation, nonce reservations ------------------------

TEST_F(SqliteKeyStoreTest, ShredKeyForgetsTheKeyAndQueuesItsTokenObjects) {
  CreateAcme();
  ASSERT_TRUE(store_->CreateKey(Key("acme", "billing", 2), Version(2, 1)).ok());
  ASSERT_TRUE(store_->ShredKey(Id(1), {"tenants/acme/keys/1"}, 1800000000).ok());
  KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.keys.size(), 1u);
  EXPECT_EQ(snapshot.keys[0].name, "billing");
  ASSERT_EQ(snapshot.versions.size(), 1u);
  EXPECT_EQ(snapshot.versions[0].key_id, Id(2));
  EXPECT_TRUE(snapshot.aliases.empty());  // alias/orders pointed at the key
  EXPECT_EQ(snapshot.token_objects_to_destroy, std::vector<std::string>{"tenants/acme/keys/1"});
  Reopen();
  EXPECT_EQ(Load().token_objects_to_destroy.size(), 1u);  // durable until dequeued
  ASSERT_TRUE(store_->TokenObjectDestroyed("tenants/acme/keys/1").ok());
  EXPECT_TRUE(Load().token_objects_to_destroy.empty());
  EXPECT_EQ(store_->ShredKey(Id(1), {"x"}, 0).code(), Code::kNotFound);
  EXPECT_TRUE(Load().token_objects_to_destroy.empty());  // a failed shred queues nothing
  EXPECT_EQ(store_->ShredKey(Id(2), {""}, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(Load().keys.size(), 1u);
}

TEST_F(SqliteKeyStoreTest, ShredTenantForgetsEverythingOfThatTenantOnly) {
  CreateAcme();
  ASSERT_TRUE(store_
                  ->CreateTenant(testing::SampleTenant("zeta"), {Key("zeta", "k", 3)},
                                 {Version(3, 1)}, {Alias("zeta", "alias/x", 3)})
                  .ok());
  ASSERT_TRUE(
      store_->ShredTenant("acme", {"tenants/acme/keys/1", "tenants/acme/root/r"}, 1800000000).ok());
  const KeyStoreSnapshot snapshot = Load();
  ASSERT_EQ(snapshot.tenants.size(), 1u);
  EXPECT_EQ(snapshot.tenants[0].name, "zeta");
  ASSERT_EQ(snapshot.keys.size(), 1u);
  ASSERT_EQ(snapshot.versions.size(), 1u);
  ASSERT_EQ(snapshot.aliases.size(), 1u);
  EXPECT_EQ(snapshot.token_objects_to_destroy,
            (std::vector<std::string>{"tenants/acme/keys/1", "tenants/acme/root/r"}));
  EXPECT_EQ(store_->ShredTenant("acme", {}, 0).code(), Code::kNotFound);
  // The name is free again.
  EXPECT_TRUE(store_->CreateTenant(testing::SampleTenant("acme"), {}, {}, {}).ok());
}

TEST_F(SqliteKeyStoreTest, RestoreKeepsTheReplacedKeystoresDestructionQueue) {
  CreateAcme();
  ASSERT_TRUE(store_->ReserveEncryptions(Id(1), 1, 10).ok());
  const std::string backup = dir_ / "backup.db";
  ASSERT_TRUE(store_->Backup(backup).has_value());
  ASSERT_TRUE(store_->ShredKey(Id(1), {"tenants/acme/keys/1"}, 1800000000).ok());
  store_.reset();
  ASSERT_TRUE(RestoreSqliteKeyStore(backup, path_).has_value());
  Reopen();
  const KeyStoreSnapshot restored = Load();
  ASSERT_EQ(restored.keys.size(), 1u);  // the backup's key is back...
  // ...with its KEK still queued for destruction, and no reservation lower
  // than what the versions may have used since the backup.
  EXPECT_EQ(restored.token_objects_to_destroy, std::vector<std::string>{"tenants/acme/keys/1"});
  for (const auto& version : restored.versions) {
    EXPECT_EQ(version.reserved_encryptions, kAllEncryptionsReserved);
  }
}

TEST_F(SqliteKeyStoreTest, ReservationsOnlyGrow) {
  CreateAcme();
  ASSERT_TRUE(store_->ReserveEncryptions(Id(1), 2, 100).ok());
  ASSERT_TRUE(store_->ReserveEncryptions(Id(1), 2, 50).ok());  // never lowered
  Reopen();
  KeyStoreSnapshot snapshot = Load();
  EXPECT_EQ(snapshot.versions[0].reserved_encryptions, 0u);
  EXPECT_EQ(snapshot.versions[1].reserved_encryptions, 100u);
  EXPECT_EQ(store_->ReserveEncryptions(Id(1), 3, 1).code(), Code::kNotFound);
  EXPECT_EQ(store_->ReserveEncryptions(Id(9), 1, 1).code(), Code::kNotFound);
}

TEST_F(SqliteKeyStoreTest, RotationPeriodAndMinimumDecryptionVersionPersist) {
  CreateAcme();
  ASSERT_TRUE(store_->SetRotationPeriod(Id(1), 86400).ok());
  ASSERT_TRUE(store_->SetMinDecryptionVersion(Id(1), 2).ok());
  Reopen();
  KeyRecord key = Load().keys.at(0);
  EXPECT_EQ(key.rotation_period_seconds, 86400);
  EXPECT_EQ(key.min_decryption_version, 2u);
  ASSERT_TRUE(store_->SetRotationPeriod(Id(1), std::nullopt).ok());
  EXPECT_FALSE(Load().keys.at(0).rotation_period_seconds.has_value());
  EXPECT_EQ(store_->SetRotationPeriod(Id(9), 1).code(), Code::kNotFound);
  EXPECT_EQ(store_->SetMinDecryptionVersion(Id(9), 1).code(), Code::kNotFound);
  // The table constraints back the caller's checks.
  EXPECT_EQ(store_->SetRotationPeriod(Id(1), 0).code(), Code::kInternal);
  EXPECT_EQ(store_->SetMinDecryptionVersion(Id(1), 0).code(), Code::kInternal);
}

}  // namespace
}  // namespace kmsd
