// InstanceLock: one kmsd per keystore. An exclusive flock on the keystore's
// directory, taken before the token is opened and held until the process
// exits (the kernel drops it then, however kmsd ends).
//
// The socket check (server.h, CheckNoListener) finds a daemon that already
// listens; two daemons started at the same instant both pass it, and each
// would then open the token and replace the other's sealed audit head
// object. The directory is locked, not the keystore file: kmsd must not
// create a missing keystore (shredding_test), and SQLite's own locks are
// POSIX record locks on the file, which a flock neither takes nor drops.
// A directory that does not exist is not locked: the keystore's own checks
// refuse it later, as before.
#pragma once

#include <string>

#include "protocol/status.h"

namespace kmsd {

class InstanceLock {
 public:
  // UNAVAILABLE "another kmsd is using the keystore in DIR" when the lock is
  // held; INTERNAL when it cannot be asked for.
  static Result<InstanceLock> Take(const std::string& keystore_path);

  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&&) = delete;
  InstanceLock(const InstanceLock&) = delete;
  ~InstanceLock();

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace kmsd
