// RawDb: a keystore file opened with SQLite directly, for tests that build
// or inspect one behind the store's back (pragmas, constraints, migrations).
// Failures are test failures (EXPECT). Not thread-safe.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

#include "keystore/store.h"

namespace kmsd::testing {

// PRAGMA application_id of a kmsd keystore ("kmsd").
inline constexpr int64_t kKmsdApplicationId = 0x6b6d7364;

// A tenant record as the store keeps it.
inline TenantRecord SampleTenant(const std::string& name) {
  return {.name = name,
          .root_label = "root/" + name,
          .created_at = 1700000000,
          .deletion_due_at = std::nullopt};
}

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
        SQLITE_OK);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
  }
  std::string Text(const std::string& sql) { return Query(db_, sql); }

  static std::string Query(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      value = text ? reinterpret_cast<const char*>(text) : "";
    }
    sqlite3_finalize(stmt);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace kmsd::testing
