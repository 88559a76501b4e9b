// The Linux System: the only place in kmsd's libraries that makes these
// syscalls (mmap, mlock, madvise, prctl, setrlimit, umask), talks to the
// service manager and the journal (libsystemd), reads peer credentials or shuts
// down the connections the process accepted.
#include <dirent.h>
#include <linux/capability.h>
#include <malloc.h>
#include <nng/nng.h>
#include <nng/transport/ipc/ipc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "os/proc_status.h"
#include "os/system.h"

namespace kmsd {
namespace {

// The process's open descriptors, from /proc/self/fd (without the one
// reading it).
std::vector<int> OpenDescriptors() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    fds.push_back(static_cast<int>(fd));
  }
  closedir(dir);
  return fds;
}

// A connected (not listening) Unix stream socket whose own address is
// `socket_path`: one a listener there accepted.
bool IsConnectionAcceptedOn(int fd, const std::string& socket_path) {
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) != 0 || value != AF_UNIX) return false;
  length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0 || value != SOCK_STREAM) {
    return false;
  }
  length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0 || value != 0) return false;
  sockaddr_un address{};
  length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
  const size_t path_bytes =
      length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
  return std::string_view(address.sun_path, strnlen(address.sun_path, path_bytes)) == socket_path;
}

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
    // Freed heap memory is overwritten (and new allocations filled): nng
    // frees the copy of a reply it sent, which may hold a plaintext or a data
    // key, without wiping it.
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

  std::optional<PeerCredentials> PeerOfPipe(uint32_t pipe_id) override {
    nng_pipe pipe = NNG_PIPE_INITIALIZER;
    pipe.id = pipe_id;
    PeerCredentials peer;
    if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &peer.uid) != 0 ||
        nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_GID, &peer.gid) != 0 ||
        nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer.pid) != 0) {
      return std::nullopt;
    }
    peer.groups = ReadSupplementaryGroups(peer.pid, peer.uid);
    return peer;
  }

  std::vector<EndedConnection> ShutDownReadingOfConnectionsTo(
      const std::string& socket_path,
      const std::optional<std::unordered_set<uint64_t>>& peer_pids) override {
    std::vector<EndedConnection> ended;
    for (int fd : OpenDescriptors()) {
      struct stat status {};
      if (fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode)) continue;
      if (!IsConnectionAcceptedOn(fd, socket_path)) continue;
      ucred peer{};
      socklen_t length = sizeof peer;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) continue;
      const auto peer_pid = static_cast<uint64_t>(peer.pid);
      if (peer_pids && !peer_pids->contains(peer_pid)) continue;
      if (shutdown(fd, SHUT_RD) == 0) ended.push_back({status.st_ino, peer_pid});
    }
    return ended;
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
