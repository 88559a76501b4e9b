// System: everything kmsd asks of the operating system directly, behind one
// small interface so that the modules above stay free of syscalls
// (protocol/ does no I/O) and tests can fake the OS.
//
// Covered: pages for secret memory (map, lock, keep out of core dumps), the
// process's own hardening (non-dumpable, no core files, private file mode),
// thread names,
// who is at the other end of a connection (credentials of an nng IPC stream,
// supplementary groups from /proc), status reports to the
// service manager and entries in the journal. The real implementation is Linux's
// (os/linux_system.cc).
//
// CurrentSystem() is the process's System: the Linux one unless a test has
// put another in place with TEST_ScopedSystem. Implementations must be safe to
// call from any thread. An override must outlive everything that used it; a
// fake should hand out pages from the real System, so that memory mapped
// under one System and unmapped under the other stays sound.
//
// `os` is the bottom of the layering (os <- protocol <- pkcs11 <- keystore <-
// policy <- daemon): it uses no other kmsd module, so failures are plain
// values (bool, optional) that the callers turn into Status.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "os/peer_credentials.h"

// nng's byte stream (nng/nng.h), named here without its header.
typedef struct nng_stream nng_stream;

namespace kmsd {

class System {
 public:
  System() = default;
  System(const System&) = delete;
  System& operator=(const System&) = delete;
  virtual ~System() = default;

  // --- Memory for secrets.
  virtual size_t PageSize() const = 0;
  // Zero-filled, page-aligned private pages; nullptr when none are left.
  virtual void* MapPages(size_t bytes) = 0;
  virtual void UnmapPages(void* pages, size_t bytes) = 0;
  // Keeps the range in RAM (mlock); false when refused (e.g. RLIMIT_MEMLOCK).
  virtual bool LockMemory(void* data, size_t bytes) = 0;
  virtual void UnlockMemory(void* data, size_t bytes) = 0;
  // Leaves the range out of core dumps (MADV_DONTDUMP); false when refused.
  virtual bool ExcludeFromCoreDumps(void* data, size_t bytes) = 0;
  // Has a forked child find the range zero-filled (MADV_WIPEONFORK, Linux
  // 4.14); false when refused.
  virtual bool WipeOnFork(void* pages, size_t bytes) = 0;
  // How much memory this process may lock: RLIMIT_MEMLOCK's soft limit in
  // bytes; nullopt when there is no limit (unlimited, or CAP_IPC_LOCK).
  virtual std::optional<uint64_t> LockableBytes() = 0;

  // --- The process.
  // Makes the process non-dumpable and not ptrace-attachable by other users
  // (PR_SET_DUMPABLE 0), sets RLIMIT_CORE to 0, the umask to 077, and has
  // malloc overwrite freed memory (M_PERTURB: buffers libraries free without
  // wiping). False when the process could not be made non-dumpable; the rest
  // is best effort.
  virtual bool HardenProcess() = 0;
  // Names the calling thread (as top, perf and /proc/PID/task/TID/comm show
  // it), cut to the 15 bytes Linux keeps. Best effort.
  virtual void NameThisThread(std::string_view name) = 0;

  // --- Peers.
  // The credentials of the peer of an nng IPC stream (SO_PEERCRED), with
  // its supplementary groups (see ReadSupplementaryGroups); nullopt when the
  // stream is not IPC or its peer cannot be read.
  virtual std::optional<PeerCredentials> PeerOfStream(nng_stream* stream) = 0;

  // --- The service manager.
  // Reports `state` ("READY=1", "STOPPING=1", ...) with sd_notify(3), to
  // $NOTIFY_SOCKET; nothing when that is unset. Best effort.
  virtual void Notify(std::string_view state) = 0;
  // How often the service manager expects WATCHDOG=1 (sd_watchdog_enabled:
  // $WATCHDOG_USEC, for this process); zero when it does not.
  virtual std::chrono::microseconds WatchdogInterval() = 0;
  // A structured entry in the journal (sd_journal_send(3)): `fields` are
  // "NAME=value" strings (MESSAGE=, PRIORITY=, MESSAGE_ID=, ...). False when
  // the journal could not be written (no journald: the caller logs anyway).
  virtual bool Journal(const std::vector<std::string>& fields) = 0;
};

// The process's System (see above).
System& CurrentSystem();
// The real System of this platform (Linux). Never destroyed, so secrets may
// still be released during static destruction; fakes hand out its pages.
System& PlatformSystem();

// For tests: makes `system` the CurrentSystem() until destroyed, then puts the
// previous one back. Nest in stack order; not for use while other threads
// call CurrentSystem() on behalf of the test's subject.
class TEST_ScopedSystem {
 public:
  explicit TEST_ScopedSystem(System& system);
  ~TEST_ScopedSystem();
  TEST_ScopedSystem(const TEST_ScopedSystem&) = delete;
  TEST_ScopedSystem& operator=(const TEST_ScopedSystem&) = delete;

 private:
  System* previous_;
};

}  // namespace kmsd
