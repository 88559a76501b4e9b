// The Linux System: secret pages (mapped zeroed and aligned), the peer of an IPC stream,
// notices to $NOTIFY_SOCKET, thread names; TEST_ScopedSystem puts a fake in place and back.
#include "os/system.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nng/nng.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "tests/support/fake_system.h"
#include "tests/support/temp_dir.h"

namespace kmsd {
namespace {

using ::testing::ElementsAre;

TEST(LinuxSystemTest, MapsZeroedPagesAndKeepsThemOutOfCoreDumps) {
  System& system = PlatformSystem();
  const size_t bytes = 3 * system.PageSize();
  void* pages = system.MapPages(bytes);
  ASSERT_NE(pages, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pages) % system.PageSize(), 0u);
  for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(static_cast<uint8_t*>(pages)[i], 0);
  // What the flags do to the mapping, secret_buffer_test checks in smaps.
  EXPECT_TRUE(system.ExcludeFromCoreDumps(pages, bytes));
  if (system.LockMemory(pages, bytes)) system.UnlockMemory(pages, bytes);
  system.UnmapPages(pages, bytes);
}

// Both ends of an nng IPC stream: one dialed from this process and the one
// its listener accepted.
struct StreamPair {
  nng_stream_listener* listener = nullptr;
  nng_stream* dialed = nullptr;
  nng_stream* accepted = nullptr;
  ~StreamPair() {
    nng_stream_free(dialed);
    nng_stream_free(accepted);
    nng_stream_listener_free(listener);
  }
};

TEST(LinuxSystemTest, ThePeerOfAnIpcStreamIsItsProcess) {
  testing::TempDir dir;
  const std::string url = "ipc://" + (dir / "peer.sock");
  StreamPair pair;
  ASSERT_EQ(nng_stream_listener_alloc(&pair.listener, url.c_str()), 0);
  ASSERT_EQ(nng_stream_listener_listen(pair.listener), 0);
  nng_stream_dialer* dialer = nullptr;
  ASSERT_EQ(nng_stream_dialer_alloc(&dialer, url.c_str()), 0);
  nng_aio* accepting = nullptr;
  nng_aio* dialing = nullptr;
  ASSERT_EQ(nng_aio_alloc(&accepting, nullptr, nullptr), 0);
  ASSERT_EQ(nng_aio_alloc(&dialing, nullptr, nullptr), 0);
  nng_stream_listener_accept(pair.listener, accepting);
  nng_stream_dialer_dial(dialer, dialing);
  nng_aio_wait(dialing);
  nng_aio_wait(accepting);
  ASSERT_EQ(nng_aio_result(accepting), 0);
  ASSERT_EQ(nng_aio_result(dialing), 0);
  pair.accepted = static_cast<nng_stream*>(nng_aio_get_output(accepting, 0));
  pair.dialed = static_cast<nng_stream*>(nng_aio_get_output(dialing, 0));
  nng_aio_free(accepting);
  nng_aio_free(dialing);
  nng_stream_dialer_free(dialer);

  const std::optional<PeerCredentials> peer = PlatformSystem().PeerOfStream(pair.accepted);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->pid, static_cast<uint64_t>(getpid()));
  EXPECT_EQ(peer->uid, static_cast<uint64_t>(geteuid()));
  EXPECT_EQ(peer->gid, static_cast<uint64_t>(getegid()));
}

TEST(LinuxSystemTest, NotifySendsTheStateToNotifySocket) {
  testing::TempDir dir;
  const std::string path = dir / "notify";
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof address.sun_path);
  std::memcpy(address.sun_path, path.c_str(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(setenv("NOTIFY_SOCKET", path.c_str(), 1), 0);
  PlatformSystem().Notify("READY=1");
  unsetenv("NOTIFY_SOCKET");
  PlatformSystem().Notify("STOPPING=1");  // unset: nothing is sent
  char received[64] = {};
  const ssize_t n = recv(fd, received, sizeof received, MSG_DONTWAIT);
  EXPECT_EQ(std::string(received, n > 0 ? static_cast<size_t>(n) : 0), "READY=1");
  EXPECT_LT(recv(fd, received, sizeof received, MSG_DONTWAIT), 0);
  close(fd);
}

// The name /proc shows for the calling thread.
std::string CommOfThisThread() {
  std::ifstream in("/proc/self/task/" + std::to_string(gettid()) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST(LinuxSystemTest, NamesTheCallingThreadCutToFifteenBytes) {
  std::string short_name, long_name;
  std::thread([&] {
    PlatformSystem().NameThisThread("kmsd:test");
    short_name = CommOfThisThread();
    PlatformSystem().NameThisThread("kmsd:a-name-longer-than-fifteen");
    long_name = CommOfThisThread();
  }).join();
  EXPECT_EQ(short_name, "kmsd:test");
  EXPECT_EQ(long_name, "kmsd:a-name-lon");
  EXPECT_NE(CommOfThisThread(), "kmsd:test");  // only the calling thread
}

TEST(ScopedSystemTest, PutsTheFakeInPlaceAndThePreviousBack) {
  System& before = CurrentSystem();
  testing::FakeSystem fake;
  {
    TEST_ScopedSystem scoped(fake);
    EXPECT_EQ(&CurrentSystem(), &fake);
    CurrentSystem().Notify("READY=1");
    {
      testing::FakeSystem inner;
      TEST_ScopedSystem nested(inner);
      EXPECT_EQ(&CurrentSystem(), &inner);
    }
    EXPECT_EQ(&CurrentSystem(), &fake);
  }
  EXPECT_EQ(&CurrentSystem(), &before);
  EXPECT_EQ(&before, &PlatformSystem());
  EXPECT_THAT(fake.calls().notices, ElementsAre("READY=1"));
}

}  // namespace
}  // namespace kmsd
