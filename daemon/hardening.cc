#include "daemon/hardening.h"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "protocol/secret_buffer.h"

namespace kmsd {

Status HardenProcess() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Status(Code::kInternal, "cannot make the process non-dumpable");
  }
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  umask(077);
  // 4 MiB of locked secure heap holds every small secret; larger plaintexts
  // get their own locked pages (SecretBuffer).
  if (!InitSecureHeap(4 << 20)) {
    spdlog::warn("secure heap could not be locked (RLIMIT_MEMLOCK?); secrets use mlock'ed pages");
  }
  return OkStatus();
}

}  // namespace kmsd
