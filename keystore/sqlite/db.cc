#include "keystore/sqlite/db.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace kmsd::sqlite {

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

Status CreateFileIfMissing(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return OkStatus();
  }
  const int error = errno;
  if (error == EEXIST) return OkStatus();
  return ErrnoStatus(Code::kInternal, "cannot create the file", error);
}

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

}  // namespace kmsd::sqlite
