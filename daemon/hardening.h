// Process hardening that does not depend on the service manager: no core
// dumps, not ptrace-attachable by other users, secure heap for secrets,
// private file mode. Call once at start, before secrets exist.
#pragma once

#include "protocol/status.h"

namespace kmsd {

// Through the System (os/system.h): sets PR_SET_DUMPABLE 0 and RLIMIT_CORE 0,
// umask 077; then sets up the secure heap. Returns an error only when the process cannot be made
// non-dumpable.
Status HardenProcess();

}  // namespace kmsd
