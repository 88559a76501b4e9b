#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <thread>

#include "client/esdk/random_pool.h"
#include "tests/support/fake_system.h"

namespace kmsd::esdk {
namespace {

using Id = std::array<uint8_t, 32>;

Id TakeId() {
  Id id{};
  EXPECT_TRUE(FillUniqueRandom(id).ok());
  return id;
}

// The id a forked child takes first, read back through a pipe.
Id ChildsFirstId() {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  if (child == 0) {
    const Id id = TakeId();
    const bool written = write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
    _exit(written ? 0 : 1);
  }
  close(fds[1]);
  Id id{};
  EXPECT_EQ(read(fds[0], id.data(), id.size()), static_cast<ssize_t>(id.size()));
  close(fds[0]);
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return id;
}

TEST(RandomPoolTest, ManyIdsAreAllDifferent) {
  std::set<Id> seen;
  // Several refills of the pool's page.
  for (int i = 0; i < 2000; ++i) EXPECT_TRUE(seen.insert(TakeId()).second) << i;
}

// Without the page's wipe on fork, the child would hand out exactly the
// bytes the parent hands out next: a message id, hence a derived key and
// its IVs, twice under a cached data key.
TEST(RandomPoolTest, AForkedChildDoesNotRepeatTheParentsNextIds) {
  (void)TakeId();  // the pool is filled before the fork
  const Id child_first = ChildsFirstId();
  std::set<Id> parent_next;
  for (int i = 0; i < 8; ++i) parent_next.insert(TakeId());
  EXPECT_FALSE(parent_next.contains(child_first));
}

TEST(RandomPoolTest, IdsComeFromRandBytesWhenTheKernelRefusesWipeOnFork) {
  kmsd::testing::FakeSystem system;
  system.wipe_on_fork_succeeds = false;
  TEST_ScopedSystem scoped(system);
  std::set<Id> seen;
  // A new thread: its pool is made under the fake, which refuses.
  std::thread([&] {
    for (int i = 0; i < 100; ++i) seen.insert(TakeId());
  }).join();
  EXPECT_EQ(seen.size(), 100u);
  const auto calls = system.calls();
  ASSERT_EQ(calls.mapped.size(), 1u);
  EXPECT_EQ(calls.unmapped, calls.mapped);  // given back at once
}

}  // namespace
}  // namespace kmsd::esdk
