// FailedAttempts: threshold, doubling delays, window, success, eviction.
#include "policy/lockout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kmsd {
namespace {

LockoutOptions Small() {
  return LockoutOptions{.threshold = 3,
                        .window_ms = 60'000,
                        .first_delay_ms = 1000,
                        .max_delay_ms = 8000,
                        .max_subjects = 100};
}

void ExpectLocked(const FailedAttempts& attempts, std::string_view subject, int64_t now,
                  uint32_t retry_after_ms) {
  Status s = attempts.Check(subject, now);
  EXPECT_EQ(s.code(), Code::kAccessDenied) << subject << " at " << now;
  EXPECT_EQ(s.retry_after_ms(), retry_after_ms) << subject << " at " << now;
}

TEST(FailedAttemptsTest, CheckOnAnUnknownSubjectIsOk) {
  FailedAttempts attempts;
  EXPECT_TRUE(attempts.Check("uid 1000", 0).ok());
  EXPECT_TRUE(attempts.Check("", 123456).ok());
  EXPECT_EQ(attempts.size(), 0u);
}

TEST(FailedAttemptsTest, LocksFromTheThresholdthFailure) {
  FailedAttempts attempts(Small());
  for (uint32_t i = 1; i <= 2; ++i) {
    FailedAttempts::Counted c = attempts.Failed("uid 1", 100);
    EXPECT_EQ(c.failures, i);
    EXPECT_FALSE(c.locked_until_ms.has_value());
    EXPECT_FALSE(c.newly_locked);
    EXPECT_TRUE(attempts.Check("uid 1", 100).ok());
  }
  FailedAttempts::Counted third = attempts.Failed("uid 1", 100);
  EXPECT_EQ(third.failures, 3u);
  EXPECT_EQ(third.locked_until_ms, 1100);
  EXPECT_TRUE(third.newly_locked);
  ExpectLocked(attempts, "uid 1", 100, 1000);
  ExpectLocked(attempts, "uid 1", 1099, 1);
  EXPECT_TRUE(attempts.Check("uid 1", 1100).ok());
  // Other subjects are not affected.
  EXPECT_TRUE(attempts.Check("uid 2", 100).ok());
}

TEST(FailedAttemptsTest, DefaultsLockAtTheFifthFailureForOneSecond) {
  FailedAttempts attempts;
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(attempts.Failed("uid 1", 0).locked_until_ms);
  FailedAttempts::Counted fifth = attempts.Failed("uid 1", 0);
  EXPECT_TRUE(fifth.newly_locked);
  EXPECT_EQ(fifth.locked_until_ms, 1000);
}

TEST(FailedAttemptsTest, DelaysDoubleWithEachFurtherFailureUpToTheMax) {
  FailedAttempts attempts(Small());
  int64_t now = 0;
  attempts.Failed("p", now);
  attempts.Failed("p", now);
  // Each failure made as soon as the previous lockout ends.
  const std::vector<int64_t> delays = {1000, 2000, 4000, 8000, 8000, 8000};
  for (size_t i = 0; i < delays.size(); ++i) {
    FailedAttempts::Counted c = attempts.Failed("p", now);
    EXPECT_EQ(c.failures, 3 + i);
    ASSERT_TRUE(c.locked_until_ms.has_value()) << "failure " << c.failures;
    EXPECT_EQ(*c.locked_until_ms - now, delays[i]) << "failure " << c.failures;
    EXPECT_EQ(c.newly_locked, i == 0) << "failure " << c.failures;
    ExpectLocked(attempts, "p", now, static_cast<uint32_t>(delays[i]));
    now = *c.locked_until_ms;
    EXPECT_TRUE(attempts.Check("p", now).ok());
  }
}

TEST(FailedAttemptsTest, DelayIsCappedWhenNotAPowerOfTwoOfTheFirst) {
  LockoutOptions options = Small();
  options.max_delay_ms = 5000;
  options.window_ms = int64_t{1} << 50;
  FailedAttempts attempts(options);
  std::vector<int64_t> delays;
  for (int i = 0; i < 200; ++i) {
    FailedAttempts::Counted c = attempts.Failed("p", 0);
    if (c.locked_until_ms) delays.push_back(*c.locked_until_ms);
  }
  ASSERT_EQ(delays.size(), 198u);
  EXPECT_EQ(std::vector<int64_t>(delays.begin(), delays.begin() + 5),
            (std::vector<int64_t>{1000, 2000, 4000, 5000, 5000}));
  EXPECT_EQ(delays.back(), 5000);
}

TEST(FailedAttemptsTest, AQuietWindowForgetsTheFailures) {
  FailedAttempts attempts(Small());  // window 60 s
  attempts.Failed("p", 0);
  attempts.Failed("p", 30'000);
  // Quiet for a whole window since the last failure: this one is the first.
  FailedAttempts::Counted c = attempts.Failed("p", 90'000);
  EXPECT_EQ(c.failures, 1u);
  EXPECT_FALSE(c.locked_until_ms);
  EXPECT_TRUE(attempts.Check("p", 90'000).ok());
  // Failures closer together than the window all count, however long the run.
  attempts.Failed("q", 0);
  attempts.Failed("q", 59'999);
  FailedAttempts::Counted inside = attempts.Failed("q", 119'998);
  EXPECT_EQ(inside.failures, 3u);
  EXPECT_TRUE(inside.newly_locked);
  EXPECT_EQ(inside.locked_until_ms, 120'998);
}

// A guesser that waits out each lockout and tries again is never quiet: its
// delay keeps doubling to the maximum instead of starting over.
TEST(FailedAttemptsTest, WaitingOutEachLockoutDoesNotResetTheCount) {
  LockoutOptions options = Small();
  options.threshold = 2;
  options.window_ms = 1000;
  options.first_delay_ms = 5000;
  options.max_delay_ms = 40000;
  FailedAttempts attempts(options);
  attempts.Failed("p", 0);
  int64_t until = *attempts.Failed("p", 1).locked_until_ms;
  EXPECT_EQ(until, 5001);
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; ++i) {
    const int64_t now = until;  // the moment the lockout ends
    ASSERT_TRUE(attempts.Check("p", now).ok());
    until = *attempts.Failed("p", now).locked_until_ms;
    delays.push_back(until - now);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{10000, 20000, 40000, 40000, 40000}));
  // Quiet for a window after the last lockout: forgotten.
  EXPECT_EQ(attempts.Failed("p", until + 1000).failures, 1u);
}

TEST(FailedAttemptsTest, SuccessForgetsTheFailures) {
  FailedAttempts attempts(Small());
  attempts.Failed("p", 0);
  attempts.Failed("p", 0);
  attempts.Succeeded("p");
  EXPECT_EQ(attempts.size(), 0u);
  EXPECT_EQ(attempts.Failed("p", 1).failures, 1u);
  EXPECT_EQ(attempts.Failed("p", 2).failures, 2u);
  EXPECT_TRUE(attempts.Failed("p", 3).newly_locked);
  ExpectLocked(attempts, "p", 3, 1000);
  attempts.Succeeded("p");
  EXPECT_TRUE(attempts.Check("p", 3).ok());
  attempts.Succeeded("never failed");
  EXPECT_EQ(attempts.size(), 0u);
}

TEST(FailedAttemptsTest, MessageNamesTheSubjectAndCounts) {
  FailedAttempts attempts(Small());
  for (int i = 0; i < 4; ++i) attempts.Failed("uid 1000", 10'000);  // 2 s lockout
  Status s = attempts.Check("uid 1000", 10'000);
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_EQ(s.message(), "uid 1000 is locked out for 2 s after 4 failed attempts");
  EXPECT_EQ(s.retry_after_ms(), 2000u);
  // Seconds are rounded up; retry_after_ms is exact.
  s = attempts.Check("uid 1000", 10'500);
  EXPECT_EQ(s.message(), "uid 1000 is locked out for 2 s after 4 failed attempts");
  EXPECT_EQ(s.retry_after_ms(), 1500u);
  s = attempts.Check("uid 1000", 11'999);
  EXPECT_EQ(s.message(), "uid 1000 is locked out for 1 s after 4 failed attempts");
  EXPECT_EQ(s.retry_after_ms(), 1u);
}

TEST(FailedAttemptsTest, RemembersAtMostMaxSubjectsForgettingTheLeastRecentlyFailed) {
  LockoutOptions options = Small();
  options.max_subjects = 3;
  FailedAttempts attempts(options);
  attempts.Failed("a", 1);
  attempts.Failed("b", 2);
  attempts.Failed("c", 3);
  attempts.Failed("a", 4);  // a is now the most recently failed
  attempts.Failed("d", 5);  // b goes
  EXPECT_EQ(attempts.size(), 3u);
  attempts.Failed("e", 6);  // c goes
  EXPECT_EQ(attempts.size(), 3u);
  for (int i = 0; i < 50; ++i) attempts.Failed("x" + std::to_string(i), 7 + i);
  EXPECT_EQ(attempts.size(), 3u);
  // The survivors are the three most recent; a had two failures, now forgotten.
  EXPECT_EQ(attempts.Failed("x49", 100).failures, 2u);
  EXPECT_EQ(attempts.Failed("x48", 100).failures, 2u);
  EXPECT_EQ(attempts.Failed("x47", 100).failures, 2u);
  EXPECT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts.Failed("a", 101).failures, 1u);
}

TEST(FailedAttemptsTest, ALockedOutSubjectIsNotEvictedBeforeAnUnlockedOne) {
  LockoutOptions options = Small();
  options.threshold = 2;
  options.max_subjects = 2;
  options.first_delay_ms = 10'000;
  options.max_delay_ms = 60'000;
  FailedAttempts attempts(options);
  attempts.Failed("locked", 0);
  EXPECT_TRUE(attempts.Failed("locked", 0).newly_locked);  // until 10000
  attempts.Failed("unlocked", 1);                          // failed later, not locked
  attempts.Failed("new", 2);                               // "unlocked" goes, not "locked"
  EXPECT_EQ(attempts.size(), 2u);
  ExpectLocked(attempts, "locked", 2, 9998);
  EXPECT_EQ(attempts.Failed("unlocked", 3).failures, 1u);  // forgotten; "new" goes now
  EXPECT_EQ(attempts.Failed("new", 4).failures, 1u);       // and "unlocked" again
  ExpectLocked(attempts, "locked", 4, 9996);

  // Once its lockout is over, it is the least recently failed that goes.
  attempts.Failed("later", 10'000);
  EXPECT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts.Failed("new", 10'001).failures, 2u);
  EXPECT_EQ(attempts.Failed("locked", 10'002).failures, 1u);
}

TEST(FailedAttemptsTest, WhenAllAreLockedOutTheLeastRecentlyFailedGoes) {
  LockoutOptions options = Small();
  options.threshold = 1;
  options.max_subjects = 2;
  options.first_delay_ms = 10'000;
  options.max_delay_ms = 60'000;
  FailedAttempts attempts(options);
  attempts.Failed("a", 0);  // locked until 10000
  attempts.Failed("b", 1);  // until 10001
  attempts.Failed("c", 2);  // until 10002; a goes
  EXPECT_EQ(attempts.size(), 2u);
  EXPECT_TRUE(attempts.Check("a", 3).ok());
  ExpectLocked(attempts, "b", 3, 9998);
  ExpectLocked(attempts, "c", 3, 9999);
}

TEST(FailedAttemptsTest, ExpiredSubjectsAreForgottenFirst) {
  LockoutOptions options = Small();  // window 60 s
  options.max_subjects = 3;
  FailedAttempts attempts(options);
  attempts.Failed("old1", 0);
  attempts.Failed("old2", 1);
  attempts.Failed("recent", 50'000);
  attempts.Failed("new", 61'000);  // old1 and old2 have left the window: both go
  EXPECT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts.Failed("recent", 61'001).failures, 2u);
}

}  // namespace
}  // namespace kmsd
