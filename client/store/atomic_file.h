// Writing a store's file atomically (client/store/tenant_store.h): a
// temporary file beside the target, locked by its writer while it lives (so
// that a writer that died is told apart), synced, renamed over the target
// under the tenant's lock, then the directory synced. Removed unless
// committed. Used by one thread.
#pragma once

#include <functional>
#include <span>
#include <string>

#include "client/store/beneath.h"

namespace kmsd::store {

// The tenant's lock (.kmsd-lock in its directory), held until the Fd dies.
Result<Fd> LockTenant(const Beneath& tenant_directory);

// A temporary file's name saying what its write reserved
// (client/store/tree.h).
std::string TemporaryName(uint64_t reserved_bytes, bool replacing);

class AtomicFile {
 public:
  // Creates `temporary_name` (mode 0600) in `directory` (which must outlive
  // it) and locks it. Call it holding the tenant's lock (LockTenant): between
  // the two steps, a writer measuring the tree would take the file for a dead
  // writer's.
  static Result<AtomicFile> Create(const Beneath& directory, std::string temporary_name);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile();
  int fd() const { return fd_.get(); }

  // Syncs the file, then, holding the lock of `tenant_directory`, runs
  // `before_rename` (an error stops the commit) and renames the file over
  // `target` in its directory; then syncs the directory. `shown` names the
  // target in errors.
  Status Commit(const Beneath& tenant_directory, const std::string& target, std::string_view shown,
                const std::function<Status()>& before_rename = {});

 private:
  AtomicFile(const Beneath& directory, std::string name, Fd fd)
      : directory_(&directory), name_(std::move(name)), fd_(std::move(fd)) {}
  const Beneath* directory_;
  std::string name_;
  Fd fd_;
  bool committed_ = false;
};

Status WriteAll(int fd, std::span<const uint8_t> bytes);

}  // namespace kmsd::store
