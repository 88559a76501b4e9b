#include "daemon/hardening.h"

#include <string>

#include "os/system.h"
#include "protocol/secret_buffer.h"

namespace kmsd {

Status HardenProcess() {
  if (!CurrentSystem().HardenProcess()) {
    return Status(Code::kInternal, "cannot make the process non-dumpable");
  }
  // Secrets must never reach swap: refuse to start rather than run with
  // memory that cannot be locked.
  if (std::optional<uint64_t> lockable = CurrentSystem().LockableBytes();
      lockable && *lockable < kMinLockableBytes) {
    return Status(Code::kInternal,
                  "RLIMIT_MEMLOCK lets kmsd lock " + std::to_string(*lockable / 1024) +
                      " KiB of memory; it needs at least " +
                      std::to_string(kMinLockableBytes / 1024) +
                      " KiB so that keys and plaintexts never reach swap. Raise it "
                      "(LimitMEMLOCK=64M in kmsd.service, or ulimit -l " +
                      std::to_string(kMinLockableBytes / 1024) + ")");
  }
  if (!InitSecureHeap(kSecureHeapBytes)) {
    return Status(Code::kInternal, "the secure heap (" + std::to_string(kSecureHeapBytes >> 20) +
                                       " MiB) could not be locked in memory");
  }
  return OkStatus();
}

}  // namespace kmsd
