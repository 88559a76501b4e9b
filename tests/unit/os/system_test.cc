// The Linux System: secret pages (mapped zeroed and aligned), peer lookups of unknown pipes,
// notices to $NOTIFY_SOCKET, thread names, connections ended by their socket; TEST_ScopedSystem
// puts a fake in place and back.
#include "os/system.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
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

TEST(LinuxSystemTest, AnUnknownPipeHasNoPeer) {
  EXPECT_FALSE(PlatformSystem().PeerOfPipe(0));
  EXPECT_FALSE(PlatformSystem().PeerOfPipe(0x7fffffff));
}

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), std::min(path.size(), sizeof address.sun_path - 1));
  return address;
}

int ConnectTo(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = UnixAddress(path);
  EXPECT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  return fd;
}

uint64_t InodeOf(int fd) {
  struct stat status {};
  EXPECT_EQ(fstat(fd, &status), 0);
  return status.st_ino;
}

// What a read that must not wait finds: 0 at end of file, -1 when there is
// nothing yet.
ssize_t ReadNow(int fd) {
  char byte;
  return recv(fd, &byte, 1, MSG_DONTWAIT);
}

TEST(LinuxSystemTest, ShutsDownReadingOfTheConnectionsAcceptedOnASocketOnly) {
  testing::TempDir dir;
  const std::string path = dir / "listen.sock";
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = UnixAddress(path);
  ASSERT_EQ(bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  const int client_a = ConnectTo(path), client_b = ConnectTo(path);
  const int accepted_a = accept(listener, nullptr, nullptr);
  const int accepted_b = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted_b, 0);
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);

  // Another peer process, or another socket's path: nothing.
  EXPECT_TRUE(PlatformSystem()
                  .ShutDownReadingOfConnectionsTo(path, std::unordered_set<uint64_t>{1})
                  .empty());
  EXPECT_TRUE(
      PlatformSystem().ShutDownReadingOfConnectionsTo(dir / "other.sock", std::nullopt).empty());
  EXPECT_LT(ReadNow(accepted_a), 0);

  const auto self = static_cast<uint64_t>(getpid());
  std::vector<uint64_t> inodes;
  for (const EndedConnection& ended : PlatformSystem().ShutDownReadingOfConnectionsTo(
           path, std::unordered_set<uint64_t>{1, self})) {
    EXPECT_EQ(ended.peer_pid, self);
    inodes.push_back(ended.inode);
  }
  EXPECT_THAT(inodes, ::testing::UnorderedElementsAre(InodeOf(accepted_a), InodeOf(accepted_b)));
  // The peers may no longer send; the accepted ends read the end.
  EXPECT_EQ(send(client_b, "x", 1, MSG_NOSIGNAL), -1);
  EXPECT_EQ(ReadNow(accepted_a), 0);
  EXPECT_EQ(ReadNow(accepted_b), 0);
  // The clients' ends, the unrelated pair and the listener are untouched.
  EXPECT_LT(ReadNow(client_a), 0);
  EXPECT_LT(ReadNow(pair[0]), 0);
  const int client_c = ConnectTo(path);
  const int accepted_c = accept(listener, nullptr, nullptr);
  EXPECT_GE(accepted_c, 0);
  EXPECT_EQ(send(client_c, "y", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(ReadNow(accepted_c), 1);
  for (int fd : {listener, client_a, client_b, client_c, accepted_a, accepted_b, accepted_c,
                 pair[0], pair[1]}) {
    close(fd);
  }
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
