// RefusalLog: one line per interval at most, each summing the refusals since
// the previous one; PeerGate's /proc parsing trusts only the peer's own uid.
#include "daemon/refusal_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "os/proc_status.h"

namespace kmsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using LogClock = RefusalLog::Clock;
using std::chrono::milliseconds;

const LogClock::time_point kStart{std::chrono::seconds(1000)};

TEST(RefusalLogTest, FirstRefusalIsLoggedAtOnce) {
  RefusalLog log(std::chrono::seconds(1));
  auto line = log.Record({.uid = 65534, .pid = 42, .reason = "not allowed to use kmsd"}, kStart);
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, HasSubstr("refused 1 connection since the last report (1 in all)"));
  EXPECT_THAT(*line, HasSubstr("uid 65534 pid 42, not allowed to use kmsd"));
  EXPECT_EQ(log.total(), 1u);
}

TEST(RefusalLogTest, AFloodWithinOneIntervalGivesNoFurtherLine) {
  RefusalLog log(std::chrono::seconds(1));
  ASSERT_TRUE(log.Record({.uid = 1, .pid = 1, .reason = "r"}, kStart));
  for (int i = 0; i < 10000; ++i) {
    EXPECT_FALSE(
        log.Record({.uid = 2, .pid = uint64_t(i), .reason = "r"}, kStart + milliseconds(i % 999)));
  }
  EXPECT_EQ(log.total(), 10001u);
  EXPECT_FALSE(log.Flush(kStart + milliseconds(999)));
  auto line = log.Flush(kStart + milliseconds(1000));
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, HasSubstr("refused 10000 connections since the last report (10001 in all)"));
  EXPECT_THAT(*line, HasSubstr("latest: uid 2 pid 9999"));
  EXPECT_FALSE(log.Flush(kStart + milliseconds(5000))) << "nothing left to report";
}

TEST(RefusalLogTest, RefusalAfterTheIntervalIsLoggedWithThoseBeforeIt) {
  RefusalLog log(std::chrono::seconds(1));
  ASSERT_TRUE(log.Record({.uid = 1, .pid = 1, .reason = "r"}, kStart));
  EXPECT_FALSE(log.Record({.uid = 1, .pid = 2, .reason = "r"}, kStart + milliseconds(10)));
  auto line = log.Record({.uid = 3, .pid = 3, .reason = "cap"}, kStart + milliseconds(1500));
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, HasSubstr("refused 2 connections"));
  EXPECT_THAT(*line, HasSubstr("uid 3 pid 3, cap"));
}

TEST(RefusalLogTest, LongReasonIsCut) {
  RefusalLog log(std::chrono::seconds(1));
  const std::string reason(10000, 'x');
  auto line = log.Record({.uid = 1, .pid = 1, .reason = reason}, kStart);
  ASSERT_TRUE(line);
  EXPECT_LT(line->size(), 300u);
}

TEST(ProcStatusGroupsTest, GroupsOfTheSameEffectiveUidAreRead) {
  const std::string status =
      "Name:\tcat\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n"
      "Groups:\t4 24 27 1001 \nNgid:\t0\n";
  EXPECT_THAT(GroupsFromProcStatus(status, 1000), ElementsAre(4, 24, 27, 1001));
}

TEST(ProcStatusGroupsTest, AnotherEffectiveUidGivesNoGroups) {
  // A pid reused by another user's process: its groups are not the peer's.
  const std::string status = "Uid:\t1000\t0\t0\t0\nGroups:\t0 4\n";
  EXPECT_THAT(GroupsFromProcStatus(status, 1000), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus(status, 0), ElementsAre(0, 4));
}

TEST(ProcStatusGroupsTest, MalformedOrMissingLinesGiveNoGroups) {
  EXPECT_THAT(GroupsFromProcStatus("", 0), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus("Uid:\t0\t0\t0\t0\n", 0), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus("Groups:\t1 2\n", 0), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus("Uid:\t0\t0\nGroups:\t1\n", 0), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus("Uid:\t0\t0\t0\t0\nGroups:\t1 x 2\n", 0), IsEmpty());
  EXPECT_THAT(GroupsFromProcStatus("Uid:\t0\t0\t0\t0\nGroups:\t\n", 0), IsEmpty());
}

TEST(ProcStatusGroupsTest, OwnProcessIsReadable) {
  // This test's own /proc entry: same uid, so its groups (maybe none) come back
  // without error; another uid gets none.
  const uint64_t pid = static_cast<uint64_t>(getpid());
  EXPECT_THAT(ReadSupplementaryGroups(pid, getuid() + 1), IsEmpty());
  EXPECT_THAT(ReadSupplementaryGroups(0, getuid()), IsEmpty());
}

}  // namespace
}  // namespace kmsd
