#include "keystore/sqlite/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "keystore/backup_directory.h"
#include "keystore/sqlite/db.h"
#include "keystore/sqlite/records.h"
#include "keystore/sqlite/schema.h"
#include "os/paths.h"

namespace kmsd::sqlite {
namespace {

// A temporary file that is removed when this dies, unless released.
class TempFile {
 public:
  // An empty 0600 file named after `target`, in the same directory (so that
  // it can be linked or renamed to `target`).
  static Result<TempFile> CreateBeside(const std::string& target) {
    std::string name = target + ".tmp-XXXXXX";
    int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) {
      return Error(ErrnoStatus(Code::kInternal, "cannot create a file beside " + target, errno));
    }
    ::close(fd);
    return TempFile(std::move(name));
  }
  TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (path_.empty()) return;
    ::unlink(path_.c_str());
    ::unlink((path_ + "-journal").c_str());
    ::unlink((path_ + "-wal").c_str());
    ::unlink((path_ + "-shm").c_str());
  }
  const std::string& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(Code::kInternal, "cannot open " + path, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(Code::kInternal, "cannot fsync " + path, error);
  return OkStatus();
}
Status SyncFile(const std::string& path) { return SyncPath(path, O_RDONLY); }
Status SyncDirectoryOf(const std::string& path) {
  return SyncPath(DirectoryOf(path), O_RDONLY | O_DIRECTORY);
}

Result<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error(ErrnoStatus(Code::kInternal, path, errno));
  return static_cast<uint64_t>(st.st_size);
}

// Copies the bytes of `from` (open for reading) into the file `to`.
Status CopyContents(int from, const std::string& to) {
  int out = ::open(to.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (out < 0) return ErrnoStatus(Code::kInternal, "cannot open " + to, errno);
  char buffer[1 << 16];
  Status status = OkStatus();
  for (;;) {
    ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoStatus(Code::kInternal, "cannot read the backup", errno);
      break;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status = ErrnoStatus(Code::kInternal, "cannot write " + to, errno);
        break;
      }
      done += w;
    }
    if (!status.ok()) break;
  }
  ::close(out);
  return status;
}

// Folds the old keystore's WAL into it (best effort), so that the old file
// is whole should the rename below fail.
void CheckpointOldKeystore(const std::string& path) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  }
  sqlite3_close_v2(raw);
}

Status RemoveIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return OkStatus();
  return ErrnoStatus(Code::kInternal, "cannot remove " + path, errno);
}

// The labels the keystore at `path` has queued for destruction; none when it
// is missing, not a keystore, or older than schema 3 (best effort: the
// keystore being replaced may be the broken one).
std::vector<std::string> QueuedDestructionsOf(const std::string& path) {
  std::vector<std::string> labels;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return labels;
  Result<Connection> db = Connect(path);
  if (!db) return labels;
  Status read = ForEachRow(db->get(), "SELECT label FROM token_objects_to_destroy",
                           [&](const Statement& row) -> Status {
                             labels.push_back(row.Text(0));
                             return OkStatus();
                           });
  if (!read.ok()) labels.clear();
  return labels;
}

// What a restore must not bring back: an API key revoked, or a grant
// retired, since the backup was taken (or deleted with its principal, key or
// tenant). Each table's ids the replaced keystore still honours; nullopt for
// a table it does not have (missing, not a keystore, or an older schema: best
// effort, as above).
struct Honoured {
  std::optional<std::set<std::string>> api_keys;
  std::optional<std::set<std::string>> grants;
};

constexpr std::string_view kUsableApiKeys = "SELECT id FROM api_keys WHERE revoked_at IS NULL";
constexpr std::string_view kUsableGrants = "SELECT id FROM grants WHERE retired_at IS NULL";

std::optional<std::set<std::string>> IdsOf(sqlite3* db, std::string_view query) {
  std::set<std::string> ids;
  Status read = ForEachRow(db, query, [&](const Statement& row) -> Status {
    ids.insert(row.Text(0));
    return OkStatus();
  });
  if (!read.ok()) return std::nullopt;
  return ids;
}

Honoured HonouredBy(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  Result<Connection> db = Connect(path);
  if (!db) return {};
  return {.api_keys = IdsOf(db->get(), kUsableApiKeys), .grants = IdsOf(db->get(), kUsableGrants)};
}

// Ends, in the copy, every row `query` selects that `honoured` lacks, with
// `end` (an UPDATE ... WHERE id = ?).
Status EndRowsNotIn(sqlite3* db, std::string_view query, const std::set<std::string>& honoured,
                    std::string_view end) {
  std::vector<std::string> ending;
  RETURN_IF_ERROR(ForEachRow(db, query, [&](const Statement& row) -> Status {
    if (!honoured.contains(row.Text(0))) ending.push_back(row.Text(0));
    return OkStatus();
  }));
  for (const std::string& id : ending) RETURN_IF_ERROR(Exec(db, end, id));
  return OkStatus();
}

Status AdjustRestoredCopy(const std::string& path, const std::vector<std::string>& queued,
                          const Honoured& honoured) {
  ASSIGN_OR_RETURN(Connection db, Connect(path));
  RETURN_IF_ERROR(Migrate(db.get()));
  return InTransaction(db.get(), "BEGIN IMMEDIATE", [&]() -> Status {
    RETURN_IF_ERROR(Exec(db.get(), "UPDATE key_versions SET reserved_encryptions = ?",
                         static_cast<int64_t>(kAllEncryptionsReserved)));
    if (honoured.api_keys) {
      RETURN_IF_ERROR(EndRowsNotIn(db.get(), kUsableApiKeys, *honoured.api_keys,
                                   "UPDATE api_keys SET revoked_at = "
                                   "CAST(strftime('%s', 'now') AS INTEGER) WHERE id = ?"));
    }
    if (honoured.grants) {
      RETURN_IF_ERROR(EndRowsNotIn(db.get(), kUsableGrants, *honoured.grants,
                                   "UPDATE grants SET retired_at = "
                                   "CAST(strftime('%s', 'now') AS INTEGER) WHERE id = ?"));
    }
    return QueueDestruction(db.get(), queued, 0);
  });
}

// Copies the live database into the empty file `temp` and counts the copy.
Result<KeyStoreCopyInfo> CopyInto(const std::string& temp,
                                  const std::function<Status(sqlite3* dest)>& copy_live) {
  ASSIGN_OR_RETURN(Connection dest, Connect(temp));
  RETURN_IF_ERROR(copy_live(dest.get()));
  ASSIGN_OR_RETURN(std::string mode, QueryText(dest.get(), "PRAGMA journal_mode = DELETE"));
  if (mode != "delete") {
    return Error(Code::kInternal, "backup: cannot leave WAL mode (journal_mode is " + mode + ")");
  }
  return Summarize(dest.get());
}

}  // namespace

Status CopyPages(sqlite3* live, sqlite3* dest) {
  sqlite3_backup* backup = sqlite3_backup_init(dest, "main", live, "main");
  if (backup == nullptr) return SqliteError(dest);
  // -1: every page in one step, inside one read transaction of `live`.
  const int step = sqlite3_backup_step(backup, -1);
  const int finish = sqlite3_backup_finish(backup);
  if (step != SQLITE_DONE || finish != SQLITE_OK) {
    return Status(Code::kInternal,
                  std::string("backup: ") + sqlite3_errstr(step) + ", " + sqlite3_errmsg(dest));
  }
  return OkStatus();
}

Result<KeyStoreCopyInfo> WriteBackup(const std::string& keystore_path, const std::string& target,
                                     const std::function<Status(sqlite3* dest)>& copy_live) {
  // Refused before any copy is made: a bad path, a symlink on the way, a
  // name taken (CreateFileNoFollow checks again where it matters).
  RETURN_IF_ERROR(CheckCanCreateNoFollow(target));
  // SQLite writes the copy beside the keystore, in kmsd's own directory:
  // SQLite opens files by path, so it never writes in the backup directory.
  ASSIGN_OR_RETURN(TempFile staged, TempFile::CreateBeside(keystore_path));
  ASSIGN_OR_RETURN(KeyStoreCopyInfo info, CopyInto(staged.path(), copy_live));
  int in = ::open(staged.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Error(ErrnoStatus(Code::kInternal, "cannot open " + staged.path(), errno));
  Result<uint64_t> bytes = CreateFileNoFollow(in, target);
  ::close(in);
  if (!bytes) return Error(bytes.error());
  info.path = target;
  info.bytes = *bytes;
  return info;
}

Result<KeyStoreCopyInfo> Restore(const std::string& backup_path, const std::string& keystore_path) {
  int in = ::open(backup_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    const int error = errno;
    return Error(ErrnoStatus(error == ENOENT ? Code::kNotFound : Code::kInternal,
                             "cannot open the backup " + backup_path, error));
  }
  Result<TempFile> temp = TempFile::CreateBeside(keystore_path);
  Status copied = temp ? CopyContents(in, temp->path()) : temp.error();
  ::close(in);
  RETURN_IF_ERROR(copied);

  // Identify and check the copy, never the keystore or the backup itself.
  Result<KeyStoreCopyInfo> info = [&]() -> Result<KeyStoreCopyInfo> {
    ASSIGN_OR_RETURN(Connection db, Connect(temp->path()));
    ASSIGN_OR_RETURN(KeyStoreCopyInfo summary, Summarize(db.get()));
    ASSIGN_OR_RETURN(std::string check, QueryText(db.get(), "PRAGMA quick_check"));
    if (check != "ok") return Error(Code::kInternal, "corrupt keystore: " + check);
    return summary;
  }();
  if (!info) {
    return Error(Code::kInvalidArgument, "backup " + backup_path + ": " + info.error().message());
  }
  RETURN_IF_ERROR(AdjustRestoredCopy(temp->path(), QueuedDestructionsOf(keystore_path),
                                     HonouredBy(keystore_path)));
  RETURN_IF_ERROR(RemoveIfPresent(temp->path() + "-wal"));
  RETURN_IF_ERROR(RemoveIfPresent(temp->path() + "-shm"));
  RETURN_IF_ERROR(SyncFile(temp->path()));

  // A -wal left beside the old keystore would be replayed onto the restored
  // file at the next open (WAL frames are not tied to the database file), and
  // a stale -shm could index it: both go before the rename.
  CheckpointOldKeystore(keystore_path);
  RETURN_IF_ERROR(RemoveIfPresent(keystore_path + "-wal"));
  RETURN_IF_ERROR(RemoveIfPresent(keystore_path + "-shm"));
  if (::rename(temp->path().c_str(), keystore_path.c_str()) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot replace " + keystore_path, errno));
  }
  temp->Release();
  RETURN_IF_ERROR(SyncDirectoryOf(keystore_path));
  info->path = keystore_path;
  ASSIGN_OR_RETURN(info->bytes, FileSize(keystore_path));
  return info;
}

}  // namespace kmsd::sqlite
