// The Linux System: the only place in kmsd's libraries that makes these
// syscalls (mmap, mlock, madvise, prctl, setrlimit, umask), talks to the
// service manager and the journal (libsystemd) or reads peer credentials.
#include <linux/capability.h>
#include <malloc.h>
#include <nng/nng.h>
#include <nng/transport/ipc/ipc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstddef>
#include <string_view>

#include "os/proc_status.h"
#include "os/system.h"

namespace kmsd {
namespace {

class LinuxSystem final : public System {
 public:
  size_t PageSize() const override { return page_size_; }

  void* MapPages(size_t bytes) override {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  void UnmapPages(void* pages, size_t bytes) override { munmap(pages, bytes); }
  bool LockMemory(void* data, size_t bytes) override { return mlock(data, bytes) == 0; }
  void UnlockMemory(void* data, size_t bytes) override { munlock(data, bytes); }
  bool ExcludeFromCoreDumps(void* data, size_t bytes) override {
    return madvise(data, bytes, MADV_DONTDUMP) == 0;
  }
  bool WipeOnFork(void* pages, size_t bytes) override {
    return madvise(pages, bytes, MADV_WIPEONFORK) == 0;
  }

  bool HardenProcess() override {
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return false;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    umask(077);
    // Freed heap memory is overwritten (and new allocations filled): the
    // libraries kmsd uses (nng in the client, msgpack, SoftHSM2) free buffers
    // that may have held a plaintext without wiping them.
    mallopt(M_PERTURB, 0x5a);
    return true;
  }

  void NameThisThread(std::string_view name) override {
    char text[16] = {};  // the kernel's TASK_COMM_LEN, with the terminator
    name.copy(text, sizeof text - 1);
    (void)pthread_setname_np(pthread_self(), text);
  }

  std::optional<uint64_t> LockableBytes() override {
    __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
    if (syscall(SYS_capget, &header, caps) == 0 &&
        (caps[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))) != 0) {
      return std::nullopt;  // mlock ignores the limit
    }
    rlimit limit{};
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 0;
    if (limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
    return static_cast<uint64_t>(limit.rlim_cur);
  }

  std::optional<PeerCredentials> PeerOfStream(nng_stream* stream) override {
    PeerCredentials peer;
    if (nng_stream_get_uint64(stream, NNG_OPT_IPC_PEER_UID, &peer.uid) != 0 ||
        nng_stream_get_uint64(stream, NNG_OPT_IPC_PEER_GID, &peer.gid) != 0 ||
        nng_stream_get_uint64(stream, NNG_OPT_IPC_PEER_PID, &peer.pid) != 0) {
      return std::nullopt;
    }
    peer.groups = ReadSupplementaryGroups(peer.pid, peer.uid);
    return peer;
  }

  void Notify(std::string_view state) override {
    const std::string text(state);
    (void)sd_notify(0, text.c_str());
  }

  std::chrono::microseconds WatchdogInterval() override {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0) return std::chrono::microseconds(0);
    return std::chrono::microseconds(usec);
  }

  bool Journal(const std::vector<std::string>& fields) override {
    std::vector<iovec> parts;
    parts.reserve(fields.size());
    for (const std::string& field : fields) {
      parts.push_back({const_cast<char*>(field.data()), field.size()});
    }
    return sd_journal_sendv(parts.data(), static_cast<int>(parts.size())) == 0;
  }

 private:
  const size_t page_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
};

}  // namespace

System& PlatformSystem() {
  static LinuxSystem* const system = new LinuxSystem();  // never destroyed: see system.h
  return *system;
}

}  // namespace kmsd
