// The Linux System: the only place in kmsd's libraries that makes these
// syscalls (mmap, mlock, madvise, prctl, setrlimit, umask, sendto to the
// service manager) or reads peer credentials.
#include <nng/nng.h>
#include <nng/transport/ipc/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

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

  bool HardenProcess() override {
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return false;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    umask(077);
    return true;
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

  void Notify(std::string_view state) override {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || path[0] == '\0') return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const size_t length = std::strlen(path);
    if (length >= sizeof address.sun_path) return;
    std::memcpy(address.sun_path, path, length);
    if (path[0] == '@') address.sun_path[0] = '\0';  // the abstract namespace
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&address),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
    close(fd);
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
