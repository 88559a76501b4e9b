#include "keystore/backup_directory.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>
#include <utility>
#include <vector>

namespace kmsd {
namespace {

// An open file descriptor, closed when this dies. Move-only.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The components of an absolute path; INVALID_ARGUMENT unless every one is
// non-empty and neither "." nor "..". "/" has none.
Result<std::vector<std::string_view>> Components(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return Error(Code::kInvalidArgument, "the path must be absolute");
  }
  std::vector<std::string_view> out;
  if (path == "/") return out;
  size_t begin = 1;
  while (true) {
    const size_t end = path.find('/', begin);
    std::string_view part = path.substr(begin, end == std::string_view::npos ? end : end - begin);
    if (part.empty()) return Error(Code::kInvalidArgument, "the path has an empty component");
    if (part == "." || part == "..") {
      return Error(Code::kInvalidArgument, "the path has a '.' or '..' component");
    }
    out.push_back(part);
    if (end == std::string_view::npos) return out;
    begin = end + 1;
  }
}

// "/a/b/c" -> {"/a/b", "c"}; "/c" -> {"/", "c"}.
std::pair<std::string, std::string> SplitLast(std::string_view path) {
  const size_t slash = path.rfind('/');
  std::string dir(path.substr(0, slash == 0 ? 1 : slash));
  return {std::move(dir), std::string(path.substr(slash + 1))};
}

// Opens the absolute directory `dir` one component at a time, never
// following a symlink. The last component is opened for reading (so that it
// can be fsynced); those above it only for lookups (O_PATH).
Result<Fd> OpenDirectoryNoFollow(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string_view> parts, Components(dir));
  Fd current(::open("/", (parts.empty() ? O_RDONLY : O_PATH) | O_DIRECTORY | O_CLOEXEC));
  if (current.get() < 0) return Error(ErrnoStatus(Code::kInternal, "cannot open /", errno));
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string part(parts[i]);
    walked += "/" + part;
    const int mode = i + 1 == parts.size() ? O_RDONLY : O_PATH;
    Fd next(::openat(current.get(), part.c_str(), mode | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) {
      const int error = errno;
      struct stat st;
      if (::fstatat(current.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) return Error(Code::kInvalidArgument, walked + " is a symlink");
        if (!S_ISDIR(st.st_mode)) {
          return Error(Code::kInvalidArgument, walked + " is not a directory");
        }
      }
      return Error(ErrnoStatus(Code::kInternal, "cannot open " + walked, error));
    }
    current = std::move(next);
  }
  return current;
}

// ".kmsd-backup-<16 hex>.tmp": a name no request can collide with for long
// (O_EXCL refuses one that does).
Result<std::string> TemporaryName() {
  uint8_t random[8];
  if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    return Error(ErrnoStatus(Code::kInternal, "no randomness for a temporary name", errno));
  }
  std::string name = ".kmsd-backup-";
  char hex[3];
  for (uint8_t b : random) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    name += hex;
  }
  return name + ".tmp";
}

// Copies `from` (from its offset to its end) into `to`.
Status CopyBytes(int from, int to) {
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(Code::kInternal, "cannot read the copy", errno);
    if (n == 0) return OkStatus();
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(to, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoStatus(Code::kInternal, "cannot write the backup", errno);
      done += w;
    }
  }
}

// A file created in an open directory, unlinked when this dies unless the
// caller linked it elsewhere first (the name is removed either way).
class TemporaryFileIn {
 public:
  static Result<TemporaryFileIn> Create(const Fd& dir) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      ASSIGN_OR_RETURN(std::string name, TemporaryName());
      Fd fd(::openat(dir.get(), name.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC,
                     0600));
      if (fd.get() >= 0) return TemporaryFileIn(dir.get(), std::move(name), std::move(fd));
      if (errno != EEXIST) {
        return Error(ErrnoStatus(Code::kInternal, "cannot create a temporary file", errno));
      }
    }
    return Error(Code::kInternal, "cannot create a temporary file: every name taken");
  }
  TemporaryFileIn(TemporaryFileIn&& other) noexcept
      : dir_(other.dir_),
        name_(std::exchange(other.name_, std::string())),
        fd_(std::move(other.fd_)) {}
  TemporaryFileIn& operator=(TemporaryFileIn&&) = delete;
  ~TemporaryFileIn() { Remove(); }
  void Remove() {
    if (!name_.empty()) ::unlinkat(dir_, name_.c_str(), 0);
    name_.clear();
  }
  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }

 private:
  TemporaryFileIn(int dir, std::string name, Fd fd)
      : dir_(dir), name_(std::move(name)), fd_(std::move(fd)) {}
  int dir_;  // not owned: the caller's directory outlives this
  std::string name_;
  Fd fd_;
};

Status CheckNameFree(const Fd& dir, const std::string& path, const std::string& name) {
  struct stat st;
  if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return Status(Code::kAlreadyExists, path + " already exists");
  }
  if (errno != ENOENT) return ErrnoStatus(Code::kInternal, "cannot look up " + path, errno);
  return OkStatus();
}

std::string BackupPathRule(const std::string& dir) {
  return "the backup path must be a file name in the backup directory " + dir +
         " (keystore.backup_dir), or an absolute path directly in it: ";
}

std::string CollapseSlashes(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace

Status CheckBackupFileName(std::string_view name) {
  if (name.empty()) return Status(Code::kInvalidArgument, "the file name is empty");
  if (name.size() > kMaxBackupFileNameBytes) {
    return Status(Code::kInvalidArgument,
                  "the file name is over " + std::to_string(kMaxBackupFileNameBytes) + " bytes");
  }
  if (name == "." || name == "..") {
    return Status(Code::kInvalidArgument, "'.' and '..' are not file names");
  }
  for (char c : name) {
    if (c == '/') return Status(Code::kInvalidArgument, "a file name has no '/'");
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return Status(Code::kInvalidArgument, "the file name holds a NUL or control byte");
    }
  }
  return OkStatus();
}

Status CheckAbsoluteFilePath(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return Status(Code::kInvalidArgument, "the path must be absolute");
  }
  const auto [dir, name] = SplitLast(path);
  RETURN_IF_ERROR(CheckBackupFileName(name));
  return StatusOf(Components(dir));
}

Result<BackupDirectory> BackupDirectory::Prepare(const std::string& path, std::string_view purpose,
                                                 std::string_view field) {
  const std::string what = std::string(purpose) + " " + path + " (" + std::string(field) + ")";
  const std::string normal = CollapseSlashes(path);
  if (normal == "/" || !StatusOf(Components(normal)).ok()) {
    return Error(Code::kInvalidArgument,
                 what + " must be an absolute path without '.' or '..' components");
  }
  const auto [parent, name] = SplitLast(normal);
  char* resolved = ::realpath(parent.c_str(), nullptr);
  if (resolved == nullptr) {
    return Error(ErrnoStatus(Code::kInvalidArgument, what + ": its parent " + parent, errno));
  }
  std::string real_parent(resolved);
  ::free(resolved);
  const std::string real = (real_parent == "/" ? "" : real_parent) + "/" + name;

  Result<Fd> parent_fd = OpenDirectoryNoFollow(real_parent);
  if (!parent_fd) return Error(Code::kInvalidArgument, what + ": " + parent_fd.error().message());
  if (::mkdirat(parent_fd->get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(ErrnoStatus(Code::kInvalidArgument, what + ": cannot create it", errno));
  }
  Result<Fd> dir = OpenDirectoryNoFollow(real);
  if (!dir) {
    return Error(Code::kInvalidArgument,
                 what + ": " + dir.error().message() + "; it must be a real directory");
  }
  struct stat st;
  if (::fstat(dir->get(), &st) != 0) {
    return Error(ErrnoStatus(Code::kInvalidArgument, what + ": cannot stat it", errno));
  }
  if (st.st_uid != ::geteuid()) {
    return Error(Code::kInvalidArgument, what + " is owned by uid " + std::to_string(st.st_uid) +
                                             ", not by kmsd's uid " + std::to_string(::geteuid()));
  }
  if (st.st_mode & 022) {
    return Error(Code::kInvalidArgument, what + " is writable by group or others; chmod 0700 it");
  }
  return BackupDirectory(normal, real);
}

Result<std::string> BackupDirectory::Resolve(std::string_view requested) const {
  std::string_view name = requested;
  if (!requested.empty() && requested.front() == '/') {
    const size_t slash = requested.rfind('/');
    const std::string dir = CollapseSlashes(requested.substr(0, slash == 0 ? 1 : slash));
    name = requested.substr(slash + 1);
    if (!StatusOf(Components(dir)).ok()) {
      return Error(Code::kInvalidArgument,
                   BackupPathRule(path_) + "the path has a '.' or '..' component");
    }
    if (dir != path_ && dir != configured_path_) {
      return Error(Code::kInvalidArgument,
                   BackupPathRule(path_) + "the path is in another directory");
    }
  }
  if (Status status = CheckBackupFileName(name); !status.ok()) {
    return Error(Code::kInvalidArgument, BackupPathRule(path_) + status.message());
  }
  return path_ + "/" + std::string(name);
}

Status CheckCanCreateNoFollow(const std::string& path) {
  RETURN_IF_ERROR(CheckAbsoluteFilePath(path));
  const auto [dir_path, name] = SplitLast(path);
  ASSIGN_OR_RETURN(Fd dir, OpenDirectoryNoFollow(dir_path));
  return CheckNameFree(dir, path, name);
}

Result<uint64_t> CreateFileNoFollow(int source, const std::string& path) {
  RETURN_IF_ERROR(CheckAbsoluteFilePath(path));
  const auto [dir_path, name] = SplitLast(path);
  ASSIGN_OR_RETURN(Fd dir, OpenDirectoryNoFollow(dir_path));
  RETURN_IF_ERROR(CheckNameFree(dir, path, name));
  ASSIGN_OR_RETURN(TemporaryFileIn temp, TemporaryFileIn::Create(dir));
  // Mode 0600 whatever the umask (open's mode can only lose bits to it).
  if (::fchmod(temp.fd(), 0600) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot chmod the backup", errno));
  }
  RETURN_IF_ERROR(CopyBytes(source, temp.fd()));
  if (::fsync(temp.fd()) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot fsync the backup", errno));
  }
  struct stat st;
  if (::fstat(temp.fd(), &st) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot stat the backup", errno));
  }
  // Flags 0: a symlink at the temporary name would not be followed (there is
  // none: O_EXCL made it), and link() never follows one at the new name.
  if (::linkat(dir.get(), temp.name().c_str(), dir.get(), name.c_str(), 0) != 0) {
    const int error = errno;
    if (error == EEXIST) return Error(Code::kAlreadyExists, path + " already exists");
    return Error(ErrnoStatus(Code::kInternal, "cannot create " + path, error));
  }
  // The name is what keeps the file; the temporary name goes now, then the
  // directory is made durable.
  temp.Remove();
  if (::fsync(dir.get()) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot fsync the backup directory", errno));
  }
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace kmsd
