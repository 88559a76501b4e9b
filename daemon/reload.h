// Reloading the configuration on SIGHUP (docs/OPERATIONS.md, "Signals").
//
// Some fields take effect at once: log.level, limits.max_connections_per_uid,
// limits.max_connections, limits.idle_timeout_ms and limits.drain_timeout_ms. Every other field is
// read at start only; a reloaded file that changes one of them is refused
// whole, naming the first such field, and nothing changes (the same as a file
// that does not load). ReloadState keeps the last attempt's outcome for
// `status`. Thread-safe.
#pragma once

#include <mutex>
#include <string>

#include "daemon/config.h"
#include "protocol/operation_types.h"

namespace kmsd {

// OK when `next` differs from `running` only in fields that may change
// while kmsd runs; else INVALID_ARGUMENT naming the first other field.
Status CheckReloadable(const Config& running, const Config& next);

class ReloadState {
 public:
  // Records an attempt at unix time `at`.
  void Record(int64_t at, const Status& outcome);
  ops::ReloadStatus Get() const;

 private:
  mutable std::mutex mu_;
  ops::ReloadStatus last_;  // guarded by mu_
};

}  // namespace kmsd
