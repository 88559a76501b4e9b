// A thin RAII layer over the SQLite C API for the keystore: connections,
// prepared statements, one-statement helpers and transactions.
//
// Contract: every helper takes the connection it works on and returns Status
// or Result; none keeps state. A failed write maps to store.h's codes through
// CodeForWriteFailure (a taken key is ALREADY_EXISTS, a missing referent
// NOT_FOUND, anything else INTERNAL with SQLite's message, which names tables
// and columns but never values). InTransaction rolls back on any failure.
// Private to keystore/.
#pragma once

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd::sqlite {

inline constexpr int kBusyTimeoutMs = 5000;

struct CloseConnection {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, CloseConnection>;

// INTERNAL with SQLite's message for the last failure on `db`.
inline Status SqliteError(sqlite3* db) { return Status(Code::kInternal, sqlite3_errmsg(db)); }

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
Code CodeForWriteFailure(int rc);

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
Result<Statement> QueryOneRow(sqlite3* db, std::string_view sql);
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql);
Result<std::string> QueryText(sqlite3* db, std::string_view sql);

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

// A new keystore file is readable and writable by its owner only; SQLite gives
// the -wal and -shm files the mode of the database file. An existing file is kept.
Status CreateFileIfMissing(const std::string& path);

// Opens a connection (serialized threading mode, extended result codes, busy
// timeout) without reading the file yet.
Result<Connection> Connect(const std::string& path);

}  // namespace kmsd::sqlite
