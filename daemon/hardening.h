// Process hardening that does not depend on the service manager: no core
// dumps, not ptrace-attachable by other users, secure heap for secrets,
// private file mode. Call once at start, before secrets exist.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/status.h"

namespace kmsd {

// The secure heap: every small secret (keys, PINs, data keys); larger
// plaintexts get their own locked pages (SecretBuffer).
inline constexpr size_t kSecureHeapBytes = 4 << 20;
// RLIMIT_MEMLOCK must allow at least this much: the heap and 1 MiB of pages.
inline constexpr uint64_t kMinLockableBytes = kSecureHeapBytes + (1 << 20);

// Through the System (os/system.h): sets PR_SET_DUMPABLE 0 and RLIMIT_CORE 0,
// umask 077; then checks that kMinLockableBytes can be locked and sets up
// the locked secure heap. INTERNAL when the process cannot be made
// non-dumpable, when the memory lock limit is too low (the message says how
// to raise it) or the heap cannot be locked.
Status HardenProcess();

}  // namespace kmsd
