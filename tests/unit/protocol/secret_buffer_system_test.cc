// SecretBuffer and the OS seam: which pages it asks the System to map, lock,
// keep out of core dumps, wipe and give back, and what it does when the
// System refuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <new>

#include "os/system.h"
#include "protocol/secret_buffer.h"
#include "tests/support/fake_system.h"

namespace kmsd {
namespace {

using ::testing::ElementsAre;
using testing::FakeSystem;
using ::testing::IsEmpty;
using testing::MemoryRange;

class SecretBufferSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The secure heap serves small buffers without the System once it is
    // set up; this binary sets it up only in a death test's child.
    if (CRYPTO_secure_malloc_initialized()) GTEST_SKIP() << "the secure heap is in use";
  }
  FakeSystem fake_;
  TEST_ScopedSystem scoped_{fake_};
};

TEST_F(SecretBufferSystemTest, LocksAndExcludesExactlyItsPages) {
  const size_t page = fake_.PageSize();
  const uint8_t* data = nullptr;
  {
    SecretBuffer buffer(page + 1);
    data = buffer.RevealData();
    const MemoryRange pages{data, 2 * page};
    const auto calls = fake_.calls();
    EXPECT_THAT(calls.mapped, ElementsAre(pages));
    EXPECT_THAT(calls.excluded, ElementsAre(pages));
    EXPECT_THAT(calls.locked, ElementsAre(pages));
    EXPECT_THAT(calls.unlocked, IsEmpty());
    EXPECT_THAT(calls.unmapped, IsEmpty());
  }
  const auto calls = fake_.calls();
  EXPECT_THAT(calls.unlocked, ElementsAre(MemoryRange{data, 2 * page}));
  EXPECT_THAT(calls.wiped_before_unlock, ElementsAre(true));
  EXPECT_THAT(calls.unmapped, ElementsAre(MemoryRange{data, 2 * page}));
}

TEST_F(SecretBufferSystemTest, WipesTheSecretBeforeGivingThePagesBack) {
  {
    SecretBuffer buffer = SecretBuffer::CopyOf(std::string_view("a secret of some length"));
    ASSERT_FALSE(buffer.RevealSpan().empty());
  }
  EXPECT_THAT(fake_.calls().wiped_before_unlock, ElementsAre(true));
}

TEST_F(SecretBufferSystemTest, MovingAndShrinkingAskNothingOfTheSystem) {
  SecretBuffer first(100);
  SecretBuffer second(std::move(first));
  second.Shrink(10);
  SecretBuffer third;
  third = std::move(second);
  const auto calls = fake_.calls();
  EXPECT_EQ(calls.mapped.size(), 1u);
  EXPECT_THAT(calls.unmapped, IsEmpty());
}

TEST_F(SecretBufferSystemTest, EmptyBufferAsksNothingOfTheSystem) {
  { SecretBuffer buffer(0); }
  EXPECT_THAT(fake_.calls().mapped, IsEmpty());
  EXPECT_THAT(fake_.calls().unlocked, IsEmpty());
}

// As before the seam: mlock may fail over RLIMIT_MEMLOCK, and the buffer
// still works (kept out of core dumps), is wiped, unlocked and unmapped.
TEST_F(SecretBufferSystemTest, ARefusedLockStillGivesAWorkingBuffer) {
  fake_.lock_succeeds = false;
  fake_.exclude_succeeds = false;
  {
    SecretBuffer buffer = SecretBuffer::CopyOf(std::string_view("pin"));
    EXPECT_TRUE(buffer.EqualsInConstantTime(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("pin"), 3)));
  }
  const auto calls = fake_.calls();
  EXPECT_EQ(calls.locked.size(), 1u);
  EXPECT_EQ(calls.unlocked.size(), 1u);
  EXPECT_THAT(calls.wiped_before_unlock, ElementsAre(true));
  EXPECT_EQ(calls.unmapped.size(), 1u);
}

TEST_F(SecretBufferSystemTest, NoPagesLeftIsBadAlloc) {
  fake_.map_succeeds = false;
  EXPECT_THROW(SecretBuffer(64), std::bad_alloc);
  EXPECT_THAT(fake_.calls().locked, IsEmpty());
}

}  // namespace
}  // namespace kmsd
