#include "client/store/beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "protocol/utf8.h"

namespace kmsd::store {
namespace {

Status BadName(std::string_view name, const std::string& why) {
  return Status(Code::kInvalidArgument, "the name '" + std::string(name) + "' " + why);
}

// The error for a failed open of `name` (errno `error`).
Status OpenError(std::string_view name, int error) {
  switch (error) {
    case ENOENT:
      return Status(Code::kNotFound, "no file '" + std::string(name) + "' in the store");
    case ELOOP:
      return BadName(name, "has a symbolic link on its path: refused");
    case EXDEV:
      return BadName(name, "resolves outside the store: refused");
    case ENOTDIR:
      return BadName(name, "has a file where a directory must be");
    case EISDIR:
      return BadName(name, "is a directory");
    case EEXIST:
      return Status(Code::kAlreadyExists, "'" + std::string(name) + "' exists");
    default:
      return Status(Code::kInternal,
                    "cannot open '" + std::string(name) + "': " + std::strerror(error));
  }
}

int Openat2(int dirfd, const std::string& path, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  while (true) {
    const long fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EINTR) return static_cast<int>(fd);
  }
}

// openat(2) of one component, not following a link there.
int OpenatNoFollow(int dirfd, std::string_view component, int flags, mode_t mode) {
  const std::string text(component);
  while (true) {
    const int fd = ::openat(dirfd, text.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0 || errno != EINTR) return fd;
  }
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string_view> SplitName(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    parts.push_back(name.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return parts;
    start = slash + 1;
  }
}

Status CheckName(std::string_view name) {
  RETURN_IF_ERROR(CheckRelativeName(name));
  for (std::string_view part : SplitName(name)) {
    if (part.starts_with(kReservedPrefix)) {
      return BadName(name, "has a component starting with '" + std::string(kReservedPrefix) +
                               "' (the store's own files)");
    }
  }
  return OkStatus();
}

Status CheckRelativeName(std::string_view name, size_t max_bytes) {
  if (name.empty()) return BadName(name, "is empty");
  if (name.size() > max_bytes) {
    return Status(Code::kInvalidArgument,
                  "a name is at most " + std::to_string(max_bytes) + " bytes");
  }
  if (name.find('\0') != std::string_view::npos) return BadName(name, "holds a NUL byte");
  if (!IsUtf8(name)) return BadName(name, "is not UTF-8");
  if (name.front() == '/') return BadName(name, "is absolute: names are relative to the store");
  for (std::string_view part : SplitName(name)) {
    if (part.empty()) return BadName(name, "has an empty component");
    if (part == "." || part == "..") return BadName(name, "has a '.' or '..' component");
    if (part.size() > kMaxComponentBytes) {
      return BadName(name, "has a component over " + std::to_string(kMaxComponentBytes) + " bytes");
    }
  }
  return OkStatus();
}

bool Beneath::KernelHasOpenat2() {
  static const bool has = [] {
    const int fd = Openat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC, 0);
    if (fd >= 0) ::close(fd);
    return fd >= 0 || errno != ENOSYS;
  }();
  return has;
}

Status Beneath::Check(std::string_view name) const {
  return names_ == Names::kStore ? CheckName(name) : CheckRelativeName(name, kMaxTreeNameBytes);
}

Result<Beneath> Beneath::Open(const std::string& path, Resolver resolver, Names names) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return Error(Code::kNotFound, "no directory '" + path + "'");
    if (error == ENOTDIR) return Error(Code::kInvalidArgument, "'" + path + "' is not a directory");
    return Error(Code::kInternal, "cannot open '" + path + "': " + std::strerror(error));
  }
  if (resolver == Resolver::kAuto) {
    resolver = KernelHasOpenat2() ? Resolver::kOpenat2 : Resolver::kWalk;
  }
  return Beneath(Fd(fd), path, resolver, names);
}

Result<Fd> Beneath::Resolve(std::string_view relative, int flags, mode_t mode,
                            std::string_view name) const {
  if (resolver_ == Resolver::kWalk) return Walk(relative, flags, mode, name);
  const int fd = Openat2(fd_.get(), std::string(relative), flags | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == ENOSYS) return Error(Code::kInternal, "this kernel has no openat2(2)");
    return Error(OpenError(name, errno));
  }
  return Fd(fd);
}

// One component at a time, each relative to the descriptor of the one
// before and opened with O_NOFOLLOW: a link on the way is ELOOP, or
// ENOTDIR for a directory opened O_DIRECTORY (told apart by fstatat).
Result<Fd> Beneath::Walk(std::string_view relative, int flags, mode_t mode,
                         std::string_view name) const {
  const std::vector<std::string_view> parts = SplitName(relative);
  Fd held;
  int at = fd_.get();
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const int fd =
        OpenatNoFollow(at, parts[i], last ? flags : O_RDONLY | O_DIRECTORY, last ? mode : 0);
    if (fd < 0) {
      int error = errno;
      struct stat info {};
      if ((error == ENOTDIR || error == ELOOP) &&
          ::fstatat(at, std::string(parts[i]).c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
        error = S_ISLNK(info.st_mode) ? ELOOP : error;
      }
      return Error(OpenError(name, error));
    }
    held = Fd(fd);
    at = fd;
  }
  return held;
}

Result<Beneath> Beneath::Child(std::string_view component, bool create) const {
  if (component.empty() || component == "." || component == ".." ||
      component.find('/') != std::string_view::npos ||
      component.find('\0') != std::string_view::npos) {
    return Error(Code::kInvalidArgument, "'" + std::string(component) + "' is not one name");
  }
  if (create && ::mkdirat(fd_.get(), std::string(component).c_str(), 0700) != 0 &&
      errno != EEXIST) {
    return Error(OpenError(component, errno));
  }
  ASSIGN_OR_RETURN(Fd fd, Resolve(component, O_RDONLY | O_DIRECTORY, 0, component));
  return Beneath(std::move(fd), shown_ + "/" + std::string(component), resolver_, names_);
}

Result<Fd> Beneath::OpenFile(std::string_view name, int flags, mode_t mode) const {
  RETURN_IF_ERROR(Check(name));
  return Resolve(name, flags, mode, name);
}

Result<Fd> Beneath::OpenReserved(std::string_view component, int flags, mode_t mode) const {
  if (!component.starts_with(kReservedPrefix) || component.find('/') != std::string_view::npos) {
    return Error(Code::kInternal, "not a store file: '" + std::string(component) + "'");
  }
  return Resolve(component, flags, mode, component);
}

Result<std::pair<Beneath, std::string>> Beneath::Parent(std::string_view name, bool create) const {
  RETURN_IF_ERROR(Check(name));
  const std::vector<std::string_view> parts = SplitName(name);
  ASSIGN_OR_RETURN(Fd fd, Resolve(".", O_RDONLY | O_DIRECTORY, 0, name));
  Beneath at(std::move(fd), shown_, resolver_, names_);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto child = at.Child(parts[i], create);
    if (!child.has_value()) {
      // Say which name failed, not which component.
      const Status& status = child.error();
      if (status.code() == Code::kNotFound) return Error(OpenError(name, ENOENT));
      if (status.code() == Code::kInvalidArgument) {
        return Error(Code::kInvalidArgument,
                     status.message() + " (on the path of '" + std::string(name) + "')");
      }
      return Error(status);
    }
    at = std::move(*child);
  }
  return std::pair<Beneath, std::string>(std::move(at), std::string(parts.back()));
}

}  // namespace kmsd::store
