// Files beneath a directory, by names that cannot leave it.
//
// A store name is a relative path of components separated by '/': valid
// UTF-8 (it goes into the encryption context), at most kMaxNameBytes, each
// component at most kMaxComponentBytes, none empty, "." or "..", none
// starting with ".kmsd-" (the store's own files), no NUL. A name that breaks
// a rule is INVALID_ARGUMENT before anything is touched.
//
// Names are resolved beneath the directory with openat2(2)'s RESOLVE_BENEATH
// | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS where the kernel has it (Linux
// 5.6), else by a walk of openat(2) calls, one component at a time, each
// with O_NOFOLLOW. Either way a symbolic link anywhere on the path is
// refused (INVALID_ARGUMENT, naming it), and nothing resolves outside the
// directory even if the tree changes meanwhile: every step is relative to a
// descriptor already held, never to a path string.
//
// A Beneath holds its directory's descriptor; it is immutable and can be
// used from several threads.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace kmsd::store {

inline constexpr size_t kMaxNameBytes = 1024;
inline constexpr size_t kMaxComponentBytes = 255;
inline constexpr size_t kMaxTreeNameBytes = 4096;  // PATH_MAX
// Components the store keeps for itself (temporary files, its lock).
inline constexpr std::string_view kReservedPrefix = ".kmsd-";

// OK, or INVALID_ARGUMENT saying which rule `name` breaks.
Status CheckName(std::string_view name);
// The same rules but the reserved prefix, with a limit of its own (for names
// from elsewhere: a backup's paths, up to PATH_MAX).
Status CheckRelativeName(std::string_view name, size_t max_bytes = kMaxNameBytes);

// A file descriptor, closed when it dies.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

enum class Resolver {
  kAuto,     // openat2 if the kernel has it, else the walk
  kOpenat2,  // openat2 only (INTERNAL where the kernel lacks it)
  kWalk,     // the openat walk only
};

// Which names a Beneath takes: a store's (CheckName) or any tree's
// (CheckRelativeName up to PATH_MAX: `.kmsd-` allowed, for restored backups).
enum class Names { kStore, kTree };

class Beneath {
 public:
  // The directory at `path` (followed as given: the operator chose it).
  // NOT_FOUND if it does not exist, INVALID_ARGUMENT if it is not a directory.
  static Result<Beneath> Open(const std::string& path, Resolver resolver = Resolver::kAuto,
                              Names names = Names::kStore);
  // The directory `component` (one checked component) of this one, made
  // (mode 0700) when `create`; a symbolic link is refused.
  Result<Beneath> Child(std::string_view component, bool create) const;

  // Opens `name` (checked) with open(2) `flags` and `mode`; NOT_FOUND when it
  // (or a directory on its path) does not exist.
  Result<Fd> OpenFile(std::string_view name, int flags, mode_t mode = 0) const;
  // Opens the store's own file `component` (one component starting with
  // kReservedPrefix) in this directory, not following a link.
  Result<Fd> OpenReserved(std::string_view component, int flags, mode_t mode = 0) const;
  // The directory `name` is in, and its last component; the directories on
  // the way are made (mode 0700) when `create`.
  Result<std::pair<Beneath, std::string>> Parent(std::string_view name, bool create) const;

  int fd() const { return fd_.get(); }
  Resolver resolver() const { return resolver_; }
  // Whether this kernel has openat2 (asked once).
  static bool KernelHasOpenat2();

 private:
  Beneath(Fd fd, std::string shown, Resolver resolver, Names names)
      : fd_(std::move(fd)), shown_(std::move(shown)), resolver_(resolver), names_(names) {}
  Status Check(std::string_view name) const;
  Result<Fd> Resolve(std::string_view relative, int flags, mode_t mode,
                     std::string_view name) const;
  Result<Fd> Walk(std::string_view relative, int flags, mode_t mode, std::string_view name) const;

  Fd fd_;
  std::string shown_;  // how errors name the directory
  Resolver resolver_;
  Names names_;
};

// The components of a checked name.
std::vector<std::string_view> SplitName(std::string_view name);

}  // namespace kmsd::store
