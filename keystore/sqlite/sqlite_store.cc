// SqliteKeyStore: the KeyStore of store.h kept in one SQLite database.
//
// Parts: db.h (statements, transactions), schema.h (identity, schema and
// migrations), records.h (reading and writing records), access_records.h
// (principals and API keys), backup.h (backup and restore). This file opens
// the store and maps each KeyStore call to one transaction.
//
// Durability. The database is in WAL mode; the connection uses
// synchronous=FULL, foreign_keys=ON and a 5 s busy timeout. Every write is
// one BEGIN IMMEDIATE ... COMMIT and rolls back on any failure, so a call that
// returns OK is on disk and one that fails left nothing behind. A UnitOfWork
// is one such transaction however many changes it holds.
//
// Threads. One connection, used only under mu_: calls from many threads are
// serialized and a transaction never interleaves with another call. Between
// processes (or two stores on one file) SQLite's write lock serializes the
// write transactions; BEGIN IMMEDIATE takes it first, so the read-then-write
// checks inside a transaction see no other writer.
#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "keystore/sqlite/access_records.h"
#include "keystore/sqlite/backup.h"
#include "keystore/sqlite/db.h"
#include "keystore/sqlite/records.h"
#include "keystore/sqlite/schema.h"
#include "keystore/store.h"

namespace kmsd {
namespace {

using sqlite::Connection;

class SqliteKeyStore final : public KeyStore {
 public:
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& path) {
    RETURN_IF_ERROR(sqlite::CreateFileIfMissing(path));
    ASSIGN_OR_RETURN(Connection db, sqlite::Connect(path));
    // Identify before anything else reads or writes the file: switching to
    // WAL rewrites the header of whatever file this is.
    RETURN_IF_ERROR(sqlite::Identify(db.get()));
    RETURN_IF_ERROR(sqlite::Configure(db.get()));
    RETURN_IF_ERROR(sqlite::Migrate(db.get()));
    return std::unique_ptr<KeyStore>(new SqliteKeyStore(path, std::move(db)));
  }

  Result<KeyStoreSnapshot> LoadAll() override {
    std::lock_guard<std::mutex> lock(mu_);
    KeyStoreSnapshot snapshot;
    // One read transaction, so the tables agree with each other.
    RETURN_IF_ERROR(sqlite::InTransaction(
        db_.get(), "BEGIN", [&] { return sqlite::LoadSnapshot(db_.get(), snapshot); }));
    return snapshot;
  }

  // Open() fails unless the schema reached the latest version.
  int SchemaVersion() const override { return sqlite::kLatestSchemaVersion; }

  Status Apply(const UnitOfWork& unit) override {
    return Write([&](sqlite3* db) -> Status {
      for (const KeyStoreChange& change : unit.changes) {
        RETURN_IF_ERROR(sqlite::WriteChange(db, change));
      }
      return OkStatus();
    });
  }

  Status CreateTenant(const TenantRecord& tenant, const std::vector<KeyRecord>& keys,
                      const std::vector<KeyVersionRecord>& versions,
                      const std::vector<AliasRecord>& aliases) override {
    return Write([&](sqlite3* db) {
      return sqlite::InsertTenantWithKeys(db, tenant, keys, versions, aliases);
    });
  }

  Status CreateKey(const KeyRecord& key, const KeyVersionRecord& first_version) override {
    return WriteOne(store_change::CreateKey{key, first_version});
  }
  Status AddKeyVersion(const KeyVersionRecord& version) override {
    return WriteOne(store_change::AddKeyVersion{version});
  }
  Status CreateAlias(const AliasRecord& alias) override {
    return WriteOne(store_change::CreateAlias{alias});
  }
  Status UpdateAlias(const std::string& tenant, const std::string& name, const KeyId& key_id,
                     int64_t updated_at) override {
    return WriteOne(store_change::UpdateAlias{tenant, name, key_id, updated_at});
  }
  Status DeleteAlias(const std::string& tenant, const std::string& name) override {
    return WriteOne(store_change::DeleteAlias{tenant, name});
  }
  Status SetKeyEnabled(const KeyId& key_id, bool enabled) override {
    return WriteOne(store_change::SetKeyEnabled{key_id, enabled});
  }
  Status ScheduleKeyDeletion(const KeyId& key_id, int64_t due_at) override {
    return WriteOne(store_change::ScheduleKeyDeletion{key_id, due_at});
  }
  Status CancelKeyDeletion(const KeyId& key_id) override {
    return WriteOne(store_change::CancelKeyDeletion{key_id});
  }
  Status ScheduleTenantDeletion(const std::string& tenant, int64_t due_at) override {
    return WriteOne(store_change::ScheduleTenantDeletion{tenant, due_at});
  }
  Status CancelTenantDeletion(const std::string& tenant) override {
    return WriteOne(store_change::CancelTenantDeletion{tenant});
  }
  Status SetRotationPeriod(const KeyId& key_id, std::optional<int64_t> period_seconds) override {
    return WriteOne(store_change::SetRotationPeriod{key_id, period_seconds});
  }
  Status SetMinDecryptionVersion(const KeyId& key_id, uint32_t version) override {
    return WriteOne(store_change::SetMinDecryptionVersion{key_id, version});
  }
  Status ShredKey(const KeyId& key_id, const std::vector<std::string>& token_labels,
                  int64_t queued_at) override {
    return WriteOne(store_change::ShredKey{key_id, token_labels, queued_at});
  }
  Status ShredTenant(const std::string& tenant, const std::vector<std::string>& token_labels,
                     int64_t queued_at) override {
    return WriteOne(store_change::ShredTenant{tenant, token_labels, queued_at});
  }
  Status TokenObjectDestroyed(const std::string& label) override {
    return WriteOne(store_change::TokenObjectDestroyed{label});
  }
  Status ReplaceKeks(const KekReplacement& change, int64_t queued_at) override {
    return WriteOne(store_change::ReplaceKeks{change, queued_at});
  }
  Status WriteAccess(const AccessChange& change) override {
    return Write([&](sqlite3* db) { return sqlite::WriteAccessChange(db, change); });
  }

  Status ReserveEncryptions(const KeyId& key_id, uint32_t version, uint64_t reserved) override {
    return Write(
        [&](sqlite3* db) { return sqlite::RaiseReservation(db, key_id, version, reserved); });
  }

  Result<uint64_t> ReserveEncryptionRange(const KeyId& key_id, uint32_t version,
                                          uint64_t count) override {
    uint64_t end = 0;
    RETURN_IF_ERROR(Write([&](sqlite3* db) -> Status {
      ASSIGN_OR_RETURN(end, sqlite::ReserveRange(db, key_id, version, count));
      return OkStatus();
    }));
    return end;
  }

  Result<KeyStoreCopyInfo> Backup(const std::string& path) override {
    return sqlite::WriteBackup(path_, path, [&](sqlite3* dest) {
      std::lock_guard<std::mutex> lock(mu_);
      return sqlite::CopyPages(db_.get(), dest);
    });
  }

 private:
  SqliteKeyStore(std::string path, Connection db) : path_(std::move(path)), db_(std::move(db)) {}

  // Runs body(db), returning Status, as one write transaction under mu_.
  template <typename Body>
  Status Write(Body&& body) {
    std::lock_guard<std::mutex> lock(mu_);
    return sqlite::InTransaction(db_.get(), "BEGIN IMMEDIATE", [&] { return body(db_.get()); });
  }

  Status WriteOne(const KeyStoreChange& change) {
    return Write([&](sqlite3* db) { return sqlite::WriteChange(db, change); });
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

Result<KeyStoreCopyInfo> RestoreSqliteKeyStore(const std::string& backup_path,
                                               const std::string& keystore_path) {
  return sqlite::Restore(backup_path, keystore_path);
}

}  // namespace kmsd
