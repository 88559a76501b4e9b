#include "daemon/hardening.h"

#include <spdlog/spdlog.h>

#include "os/system.h"
#include "protocol/secret_buffer.h"

namespace kmsd {

Status HardenProcess() {
  if (!CurrentSystem().HardenProcess()) {
    return Status(Code::kInternal, "cannot make the process non-dumpable");
  }
  // 4 MiB of locked secure heap holds every small secret; larger plaintexts
  // get their own locked pages (SecretBuffer).
  if (!InitSecureHeap(4 << 20)) {
    spdlog::warn("secure heap could not be locked (RLIMIT_MEMLOCK?); secrets use mlock'ed pages");
  }
  return OkStatus();
}

}  // namespace kmsd
