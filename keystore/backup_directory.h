// Backup files: the one directory kmsd writes keystore backups to, which
// names a `keystore.backup` request may give, and how a backup file is
// created without following a symlink (docs/CONFIG.md, keystore.backup_dir;
// docs/PROTOCOL.md, keystore.backup).
//
// kmsd writes a backup as its own uid at an admin's request. Without a fence,
// an admin could make kmsd write wherever kmsd's uid may (its own state
// directory, a planted symlink's target). The fence is one directory, checked
// at start by BackupDirectory::Prepare: a real directory (not a symlink),
// owned by kmsd's effective uid, not writable by group or others; created
// (0700) when missing. A request then names a file directly in it: a plain
// file name, or an absolute path whose directory is, as text, the backup
// directory. Paths are compared as text, never resolved through symlinks,
// and CreateFileNoFollow refuses a symlink at any component when it writes.
//
// BackupDirectory is an immutable value (copyable, safe to share between
// threads). The free functions keep no state; their file descriptors are
// closed before they return.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

// The longest backup file name, in bytes (Linux's NAME_MAX).
inline constexpr size_t kMaxBackupFileNameBytes = 255;

// OK if `name` can be a backup file: one path component, 1 to
// kMaxBackupFileNameBytes bytes, not "." or "..", no '/', no NUL or other
// control byte (below 0x20, or 0x7f). Otherwise INVALID_ARGUMENT saying why,
// without quoting the name (it may hold anything).
Status CheckBackupFileName(std::string_view name);

class BackupDirectory {
 public:
  // Checks the directory `path` (absolute, without "." or ".." components)
  // for kmsd's use, creating it with mode 0700 if it is missing (its parent
  // must exist). Symlinks above the directory are resolved once, here; the
  // directory itself must not be one. INVALID_ARGUMENT naming `path` and the
  // problem: parent missing, a symlink or not a directory, owned by another
  // uid than this process's effective uid, writable by group or others.
  // Errors name the directory as `purpose` and its config field `field`
  // (the audit log's directory is held to the same rules).
  static Result<BackupDirectory> Prepare(const std::string& path,
                                         std::string_view purpose = "backup directory",
                                         std::string_view field = "keystore.backup_dir");

  // The absolute path of the backup file that `requested` (from a
  // keystore.backup request) names: either a file name (CheckBackupFileName)
  // or an absolute path whose directory part, with repeated '/' collapsed,
  // is configured_path() or path(), with no "." or ".." component. The
  // result is always in path(). INVALID_ARGUMENT naming the backup directory
  // otherwise. Reads nothing from the file system.
  Result<std::string> Resolve(std::string_view requested) const;

  // The directory with the symlinks above it resolved: where backups go.
  const std::string& path() const { return path_; }
  // The directory as configured.
  const std::string& configured_path() const { return configured_path_; }

 private:
  BackupDirectory(std::string configured_path, std::string path)
      : configured_path_(std::move(configured_path)), path_(std::move(path)) {}

  std::string configured_path_;
  std::string path_;
};

// OK if `path` is absolute, lexically normal (no empty, "." or ".."
// component, no trailing '/') and its last component is a valid file name;
// INVALID_ARGUMENT otherwise.
Status CheckAbsoluteFilePath(std::string_view path);

// ALREADY_EXISTS if something (a symlink included) is at `path`;
// INVALID_ARGUMENT if `path` fails CheckAbsoluteFilePath or a component of
// its directory is a symlink or not a directory; INTERNAL if the directory
// cannot be opened. OK: CreateFileNoFollow may succeed (nothing is reserved).
Status CheckCanCreateNoFollow(const std::string& path);

// Creates `path` with mode 0600 holding the bytes read from the open file
// `source` (read from its current offset to its end), and returns its size.
// The bytes go to a temporary file in the same directory (created with
// O_CREAT | O_EXCL | O_NOFOLLOW), which is fsynced and then hard-linked to
// the name: `path` appears complete or not at all, and link() fails if the
// name exists. The directory is fsynced last. The directory is opened one
// component at a time with O_NOFOLLOW, so no symlink is followed anywhere.
// Errors as CheckCanCreateNoFollow; the temporary file never outlives the call.
Result<uint64_t> CreateFileNoFollow(int source, const std::string& path);

}  // namespace kmsd
