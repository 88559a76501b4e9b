// HardenProcess asks the System to harden the process and fails when the
// process cannot be made non-dumpable or cannot lock enough memory.
#include "daemon/hardening.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "os/system.h"
#include "tests/support/fake_system.h"

namespace kmsd {
namespace {

TEST(HardenProcessTest, FailsWhenTheProcessCannotBeMadeNonDumpable) {
  testing::FakeSystem fake;
  fake.harden_succeeds = false;
  TEST_ScopedSystem scoped(fake);
  const Status status = HardenProcess();
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_EQ(status.message(), "cannot make the process non-dumpable");
  EXPECT_EQ(fake.calls().harden_calls, 1);
}

TEST(HardenProcessTest, AsksTheSystemOnceAndSucceeds) {
  testing::FakeSystem fake;
  TEST_ScopedSystem scoped(fake);
  EXPECT_TRUE(HardenProcess().ok());
  EXPECT_EQ(fake.calls().harden_calls, 1);
}

TEST(HardenProcessTest, RefusesAMemoryLockLimitBelowTheSecureHeap) {
  testing::FakeSystem fake;
  fake.lockable_bytes = kMinLockableBytes - 1;
  TEST_ScopedSystem scoped(fake);
  const Status status = HardenProcess();
  EXPECT_EQ(status.code(), Code::kInternal);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("RLIMIT_MEMLOCK lets kmsd lock 5119 KiB"));
  EXPECT_THAT(status.message(), ::testing::HasSubstr("LimitMEMLOCK="));
  fake.lockable_bytes = kMinLockableBytes;
  EXPECT_TRUE(HardenProcess().ok());
}

}  // namespace
}  // namespace kmsd
