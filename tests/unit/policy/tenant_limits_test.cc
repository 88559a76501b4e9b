// The decisions of a tenant's policy over injected times: time windows, the
// rate limiter (GCRA with burst, UTC hour and day counts), the daily quota.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "policy/tenant_policy.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

// --- Time windows -------------------------------------------------------------

constexpr int64_t kMonday = 1704067200;  // 2024-01-01 00:00:00 UTC, a Monday
constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 86400;
constexpr uint8_t kMon = 1, kTue = 2, kThu = 8, kFri = 16, kSat = 32, kSun = 64;

TimeWindow Window(uint8_t days, int from, int until, int offset = 0) {
  return {.days = days, .from_minute = from, .until_minute = until, .utc_offset_minutes = offset};
}

TEST(TimeWindowTest, NoWindowsIsAnyTime) {
  EXPECT_TRUE(WithinTimeWindows({}, kMonday));
  EXPECT_TRUE(WithinTimeWindows({}, -1));
  EXPECT_FALSE(WithinTimeWindows({Window(0, 0, 1440)}, kMonday));  // no day
}

TEST(TimeWindowTest, FromIsInUntilIsOut) {
  const std::vector<TimeWindow> office = {Window(0x1f, 8 * 60, 18 * 60)};
  EXPECT_FALSE(WithinTimeWindows(office, kMonday + 8 * kHour - 1));
  EXPECT_TRUE(WithinTimeWindows(office, kMonday + 8 * kHour));
  EXPECT_TRUE(WithinTimeWindows(office, kMonday + 18 * kHour - 1));
  EXPECT_FALSE(WithinTimeWindows(office, kMonday + 18 * kHour));
  EXPECT_TRUE(WithinTimeWindows(office, kMonday + 4 * kDay + 12 * kHour));   // Friday
  EXPECT_FALSE(WithinTimeWindows(office, kMonday + 5 * kDay + 12 * kHour));  // Saturday
  EXPECT_FALSE(WithinTimeWindows(office, kMonday - kDay + 12 * kHour));      // Sunday
  EXPECT_TRUE(WithinTimeWindows(office, kMonday + 7 * kDay + 12 * kHour));   // next Monday
}

TEST(TimeWindowTest, OffsetsShiftTheClockAndTheDay) {
  // 08:00-18:00 at +01:00 on weekdays is 07:00-17:00 UTC.
  const std::vector<TimeWindow> cet = {Window(0x1f, 8 * 60, 18 * 60, 60)};
  EXPECT_FALSE(WithinTimeWindows(cet, kMonday + 7 * kHour - 1));
  EXPECT_TRUE(WithinTimeWindows(cet, kMonday + 7 * kHour));
  EXPECT_TRUE(WithinTimeWindows(cet, kMonday + 17 * kHour - 1));
  EXPECT_FALSE(WithinTimeWindows(cet, kMonday + 17 * kHour));
  // Monday 00:00-02:00 at +05:00 starts on Sunday 19:00 UTC.
  const std::vector<TimeWindow> east = {Window(kMon, 0, 120, 300)};
  EXPECT_TRUE(WithinTimeWindows(east, kMonday - 5 * kHour));
  EXPECT_FALSE(WithinTimeWindows(east, kMonday - 5 * kHour - 1));
  EXPECT_FALSE(WithinTimeWindows(east, kMonday + 19 * kHour));  // Monday UTC is Tuesday there
  // Monday 22:00-24:00 at -05:00 ends on Tuesday 05:00 UTC.
  const std::vector<TimeWindow> west = {Window(kMon, 22 * 60, 1440, -300)};
  EXPECT_TRUE(WithinTimeWindows(west, kMonday + kDay + 3 * kHour));
  EXPECT_FALSE(WithinTimeWindows(west, kMonday + kDay + 5 * kHour));
  EXPECT_FALSE(WithinTimeWindows(west, kMonday + 22 * kHour));  // 17:00 there
  // +14:00 and -12:00: the same instant on two different days there.
  EXPECT_TRUE(WithinTimeWindows({Window(kTue, 0, 1440, 14 * 60)}, kMonday + 12 * kHour));
  EXPECT_TRUE(WithinTimeWindows({Window(kSun, 0, 1440, -12 * 60)}, kMonday + 11 * kHour));
}

TEST(TimeWindowTest, AWindowWrappingPastMidnightBelongsToItsFirstDay) {
  const std::vector<TimeWindow> friday_night = {Window(kFri, 22 * 60, 6 * 60)};
  const int64_t friday = kMonday + 4 * kDay;
  EXPECT_FALSE(WithinTimeWindows(friday_night, friday + 22 * kHour - 1));
  EXPECT_TRUE(WithinTimeWindows(friday_night, friday + 22 * kHour));
  EXPECT_TRUE(WithinTimeWindows(friday_night, friday + kDay + 6 * kHour - 1));  // Saturday
  EXPECT_FALSE(WithinTimeWindows(friday_night, friday + kDay + 6 * kHour));
  EXPECT_FALSE(WithinTimeWindows(friday_night, friday + kDay + 23 * kHour));  // Saturday night
  EXPECT_FALSE(WithinTimeWindows(friday_night, friday + 3 * kHour));          // Thursday's night
  const std::vector<TimeWindow> thursday_night = {Window(kThu, 22 * 60, 6 * 60)};
  EXPECT_TRUE(WithinTimeWindows(thursday_night, friday + 3 * kHour));
  // Sunday night wraps into the next week's Monday.
  const std::vector<TimeWindow> sunday_night = {Window(kSun, 23 * 60, 60)};
  EXPECT_TRUE(WithinTimeWindows(sunday_night, kMonday + 30 * 60));
  EXPECT_FALSE(WithinTimeWindows(sunday_night, kMonday + kDay + 30 * 60));
}

TEST(TimeWindowTest, UntilMidnightIncludesTheLastMinute) {
  const std::vector<TimeWindow> evening = {Window(kMon, 18 * 60, 1440)};
  EXPECT_TRUE(WithinTimeWindows(evening, kMonday + kDay - 1));
  EXPECT_FALSE(WithinTimeWindows(evening, kMonday + kDay));
  EXPECT_TRUE(WithinTimeWindows({Window(0x7f, 0, 1440)}, kMonday + 12345));
}

TEST(TimeWindowTest, AnyOfSeveralWindowsAndTimesBefore1970) {
  const std::vector<TimeWindow> both = {Window(kMon, 9 * 60, 10 * 60), Window(kSat, 0, 1440, 0)};
  EXPECT_TRUE(WithinTimeWindows(both, kMonday + 9 * kHour + 1));
  EXPECT_TRUE(WithinTimeWindows(both, kMonday + 5 * kDay + 1));
  EXPECT_FALSE(WithinTimeWindows(both, kMonday + 10 * kHour));
  // 1969-12-31 23:59:59 UTC was a Wednesday.
  const uint8_t wed = 4;
  EXPECT_TRUE(WithinTimeWindows({Window(wed, 23 * 60, 1440)}, -1));
  EXPECT_FALSE(WithinTimeWindows({Window(kThu, 0, 1440)}, -1));
  EXPECT_TRUE(WithinTimeWindows({Window(kThu, 0, 1440)}, 0));
}

// --- RateLimiter ----------------------------------------------------------------

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kT0 = kMonday * kSecond + 10 * kHour * kSecond;  // Monday 10:00 UTC

RateLimits PerMinute(uint64_t per_minute, std::optional<uint64_t> burst = std::nullopt) {
  RateLimits limits;
  limits.per_minute = per_minute;
  limits.burst = burst;
  return limits;
}

TEST(RateLimiterTest, NoLimitsAlwaysAdmit) {
  RateLimiter limiter;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Take(RateLimits{}, kT0).ok());
}

TEST(RateLimiterTest, ABurstThenOneRequestPerInterval) {
  RateLimiter limiter;
  const RateLimits limits = PerMinute(60, 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take(limits, kT0).ok()) << i;
  Status refused = limiter.Take(limits, kT0);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_EQ(refused.retry_after_ms(), 1000u);
  EXPECT_THAT(refused.message(), HasSubstr("requests_per_minute of 60 (burst 3) reached"));
  EXPECT_EQ(limiter.Take(limits, kT0 + kSecond / 4).retry_after_ms(), 750u);
  EXPECT_TRUE(limiter.Take(limits, kT0 + kSecond).ok());
  EXPECT_EQ(limiter.Take(limits, kT0 + kSecond).code(), Code::kThrottled);
  // Idle for long enough, the whole burst is back, and no more.
  const int64_t later = kT0 + 10 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take(limits, later).ok()) << i;
  EXPECT_EQ(limiter.Take(limits, later).code(), Code::kThrottled);
}

TEST(RateLimiterTest, BurstDefaultsToTheRatePerMinute) {
  RateLimiter limiter;
  const RateLimits limits = PerMinute(1000);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Take(limits, kT0).ok()) << i;
  Status refused = limiter.Take(limits, kT0);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_EQ(refused.retry_after_ms(), 60u);  // one interval: 60 s / 1000
  EXPECT_THAT(refused.message(), HasSubstr("requests_per_minute of 1000 reached"));
  EXPECT_THAT(refused.message(), Not(HasSubstr("burst")));
  // Over a minute, exactly per_minute more.
  int admitted = 0;
  for (int64_t t = kT0 + kSecond / 100; t <= kT0 + 60 * kSecond; t += kSecond / 100) {
    admitted += limiter.Take(limits, t).ok() ? 1 : 0;
  }
  EXPECT_EQ(admitted, 1000);
}

TEST(RateLimiterTest, RetryAfterIsRoundedUpAndAtLeastOneMillisecond) {
  RateLimiter limiter;
  const RateLimits seven = PerMinute(7, 1);  // 8571428571 ns apart
  EXPECT_TRUE(limiter.Take(seven, kT0).ok());
  EXPECT_EQ(limiter.Take(seven, kT0).retry_after_ms(), 8572u);
  EXPECT_EQ(limiter.Take(seven, kT0 + 8571428570).retry_after_ms(), 1u);
  EXPECT_TRUE(limiter.Take(seven, kT0 + 8571428571).ok());

  RateLimiter fast;
  const RateLimits limits = PerMinute(1000000000, 1);  // 60 ns apart
  EXPECT_TRUE(fast.Take(limits, kT0).ok());
  EXPECT_EQ(fast.Take(limits, kT0).retry_after_ms(), 1u);
  EXPECT_TRUE(fast.Take(limits, kT0 + 60).ok());
}

TEST(RateLimiterTest, ARefusedRequestChangesNothing) {
  RateLimiter limiter;
  RateLimits limits = PerMinute(60, 1);
  limits.per_hour = 2;
  EXPECT_TRUE(limiter.Take(limits, kT0).ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(limiter.Take(limits, kT0 + kSecond / 2).retry_after_ms(), 500u) << i;
  }
  EXPECT_TRUE(limiter.Take(limits, kT0 + kSecond).ok());  // the refusals took nothing
  Status hour = limiter.Take(limits, kT0 + 2 * kSecond);  // two of the hour's two
  EXPECT_EQ(hour.code(), Code::kThrottled);
  EXPECT_THAT(hour.message(), HasSubstr("requests_per_hour of 2 reached"));
  // A refusal by the hour does not use the bucket either.
  EXPECT_EQ(hour.retry_after_ms(), static_cast<uint32_t>((kHour - 2) * 1000));
}

TEST(RateLimiterTest, PerHourCountsTheUtcClockHour) {
  RateLimiter limiter;
  RateLimits limits;
  limits.per_hour = 2;
  const int64_t late = kT0 + kHour * kSecond - kSecond / 2;  // 10:59:59.5
  EXPECT_TRUE(limiter.Take(limits, kT0).ok());
  EXPECT_TRUE(limiter.Take(limits, late).ok());
  Status refused = limiter.Take(limits, late);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_EQ(refused.retry_after_ms(), 500u);
  EXPECT_TRUE(limiter.Take(limits, kT0 + kHour * kSecond).ok());  // 11:00:00
  EXPECT_TRUE(limiter.Take(limits, kT0 + kHour * kSecond).ok());
  EXPECT_FALSE(limiter.Take(limits, kT0 + kHour * kSecond).ok());
}

TEST(RateLimiterTest, PerDayCountsTheUtcDay) {
  RateLimiter limiter;
  RateLimits limits;
  limits.per_day = 1;
  const int64_t midnight = (kMonday + kDay) * kSecond;
  EXPECT_TRUE(limiter.Take(limits, midnight - kSecond / 2).ok());
  Status refused = limiter.Take(limits, midnight - kSecond / 2);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_EQ(refused.retry_after_ms(), 500u);
  EXPECT_THAT(refused.message(), HasSubstr("requests_per_day of 1 reached"));
  EXPECT_TRUE(limiter.Take(limits, midnight).ok());
  EXPECT_EQ(limiter.Take(limits, midnight + 1).retry_after_ms(), 86400u * 1000);
}

TEST(RateLimiterTest, RetryAfterIsTheLongestWaitAndEveryLimitHitIsNamed) {
  RateLimiter limiter;
  RateLimits limits = PerMinute(1, 1);
  limits.per_hour = 1;
  EXPECT_TRUE(limiter.Take(limits, kT0).ok());
  Status refused = limiter.Take(limits, kT0 + kSecond);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_THAT(refused.message(), HasSubstr("requests_per_minute of 1 reached"));
  EXPECT_THAT(refused.message(), HasSubstr("requests_per_hour of 1 reached"));
  EXPECT_EQ(refused.retry_after_ms(), static_cast<uint32_t>((kHour - 1) * 1000));
  // A minute on, only the hour refuses.
  refused = limiter.Take(limits, kT0 + 60 * kSecond);
  EXPECT_THAT(refused.message(), Not(HasSubstr("requests_per_minute")));
  EXPECT_EQ(refused.retry_after_ms(), static_cast<uint32_t>((kHour - 60) * 1000));
}

TEST(RateLimiterTest, TimeGoingBackwardsIsTakenAsTheLastTimeSeen) {
  RateLimiter limiter;
  const RateLimits limits = PerMinute(60, 1);
  EXPECT_TRUE(limiter.Take(limits, kT0).ok());
  // A second earlier is "now" again: no refill, and a wait measured from kT0.
  Status refused = limiter.Take(limits, kT0 - 30 * kSecond);
  EXPECT_EQ(refused.code(), Code::kThrottled);
  EXPECT_EQ(refused.retry_after_ms(), 1000u);
  EXPECT_TRUE(limiter.Take(limits, kT0 + kSecond).ok());
  // Nor does an earlier hour reopen a full hour's count.
  RateLimiter hourly;
  RateLimits per_hour;
  per_hour.per_hour = 1;
  EXPECT_TRUE(hourly.Take(per_hour, kT0).ok());
  EXPECT_FALSE(hourly.Take(per_hour, kT0 - kHour * kSecond).ok());
}

TEST(RateLimiterTest, HugeBurstsDoNotOverflow) {
  RateLimiter limiter;
  const RateLimits limits = PerMinute(1, 1000000000);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Take(limits, kT0).ok()) << i;
  RateLimiter zero;
  const RateLimits none = PerMinute(1, 0);  // taken as a burst of 1
  EXPECT_TRUE(zero.Take(none, kT0).ok());
  EXPECT_EQ(zero.Take(none, kT0).retry_after_ms(), 60000u);
}

// --- DailyQuota ---------------------------------------------------------------------

TEST(DailyQuotaTest, NoLimitIsUnlimited) {
  DailyQuota quota;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(quota.Take(std::nullopt, kMonday, 1000000).ok());
}

TEST(DailyQuotaTest, CountsTheUtcDayAndWaitsForTheNext) {
  DailyQuota quota;
  const int64_t noon = kMonday + 12 * kHour;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(quota.Take(3, noon).ok()) << i;
  Status refused = quota.Take(3, noon);
  EXPECT_EQ(refused.code(), Code::kQuotaExceeded);
  EXPECT_EQ(refused.retry_after_ms(), 12u * 3600 * 1000);
  EXPECT_THAT(refused.message(), HasSubstr("max_data_keys_per_day of 3 reached"));
  EXPECT_EQ(quota.Take(3, kMonday + kDay - 1).retry_after_ms(), 1000u);
  EXPECT_TRUE(quota.Take(3, kMonday + kDay).ok());
  EXPECT_TRUE(quota.Take(3, kMonday + kDay, 2).ok());
  EXPECT_FALSE(quota.Take(3, kMonday + kDay).ok());
}

TEST(DailyQuotaTest, SeveralAtOnceAllOrNothing) {
  DailyQuota quota;
  EXPECT_TRUE(quota.Take(5, kMonday, 3).ok());
  Status refused = quota.Take(5, kMonday, 3);
  EXPECT_EQ(refused.code(), Code::kQuotaExceeded);
  EXPECT_THAT(refused.message(), HasSubstr("3 used this UTC day, 3 asked"));
  EXPECT_TRUE(quota.Take(5, kMonday, 2).ok());  // the refusal took nothing
  EXPECT_FALSE(quota.Take(5, kMonday, 1).ok());
  EXPECT_TRUE(quota.Take(5, kMonday, 0).ok());
  DailyQuota big;
  EXPECT_EQ(big.Take(5, kMonday, 6).code(), Code::kQuotaExceeded);
  EXPECT_TRUE(big.Take(5, kMonday, 5).ok());
}

TEST(DailyQuotaTest, UseWithoutALimitStillCountsForTheDay) {
  DailyQuota quota;
  EXPECT_TRUE(quota.Take(std::nullopt, kMonday, 2).ok());
  EXPECT_FALSE(quota.Take(2, kMonday + 60).ok());
  EXPECT_TRUE(quota.Take(3, kMonday + 60).ok());
}

TEST(DailyQuotaTest, AnEarlierDayCountsAsTheDayLastSeen) {
  DailyQuota quota;
  EXPECT_TRUE(quota.Take(1, kMonday + kDay).ok());
  Status refused = quota.Take(1, kMonday + kDay - 1);
  EXPECT_EQ(refused.code(), Code::kQuotaExceeded);
  EXPECT_GE(refused.retry_after_ms().value_or(0), 1u);
}

TEST(RateLimiterTest, ANewDocumentHoldsNoMoreThanItsOwnBurstBack) {
  RateLimiter limiter;
  const RateLimits generous = PerMinute(60, 1000);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Take(generous, kT0).ok()) << i;
  // Under the old document the next request waits 1 s; the spent burst of
  // 1000 is not carried into a burst of 10 (which would wait ~1000 s).
  const RateLimits tight = PerMinute(60, 10);
  limiter.Rebase(tight, kT0);
  EXPECT_EQ(limiter.Take(tight, kT0).retry_after_ms(), 1000u);
  EXPECT_TRUE(limiter.Take(tight, kT0 + kSecond).ok());
  EXPECT_EQ(limiter.Take(tight, kT0 + kSecond).code(), Code::kThrottled);
  // A document without a rate per minute forgets the bucket: the next one
  // starts with its whole burst.
  limiter.Rebase(RateLimits{}, kT0 + kSecond);
  limiter.Rebase(PerMinute(60, 5), kT0 + kSecond);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Take(PerMinute(60, 5), kT0 + kSecond).ok()) << i;
  EXPECT_EQ(limiter.Take(PerMinute(60, 5), kT0 + kSecond).code(), Code::kThrottled);
  // A bucket with room left keeps what it has: rebasing gives no new burst.
  RateLimiter fresh;
  ASSERT_TRUE(fresh.Take(PerMinute(60, 3), kT0).ok());
  fresh.Rebase(PerMinute(60, 3), kT0);
  EXPECT_TRUE(fresh.Take(PerMinute(60, 3), kT0).ok());
  EXPECT_TRUE(fresh.Take(PerMinute(60, 3), kT0).ok());
  EXPECT_EQ(fresh.Take(PerMinute(60, 3), kT0).code(), Code::kThrottled);
}

TEST(DailyQuotaTest, GivingBackFreesTheSameDayOnly) {
  DailyQuota quota;
  ASSERT_TRUE(quota.Take(2, kMonday).ok());
  ASSERT_TRUE(quota.Take(2, kMonday).ok());
  EXPECT_EQ(quota.Take(2, kMonday).code(), Code::kQuotaExceeded);
  quota.Give(kMonday + kHour);
  EXPECT_TRUE(quota.Take(2, kMonday + kHour).ok());
  EXPECT_EQ(quota.Take(2, kMonday + kHour).code(), Code::kQuotaExceeded);
  quota.Give(kMonday + kDay, 5);  // another day: nothing to give back
  EXPECT_EQ(quota.Take(2, kMonday + kHour).code(), Code::kQuotaExceeded);
  quota.Give(kMonday + kHour, 5);  // never below zero
  EXPECT_TRUE(quota.Take(2, kMonday + kHour, 2).ok());
}

// --- Who may only tighten ---------------------------------------------------

TEST(LoosenedFieldTest, TighterOrEqualIsNotLooser) {
  TenantPolicy current;
  current.rate.per_minute = 100;
  current.max_keys = 10;
  current.allowed_peers = PeerSet{{1000, 1001}, {}};
  EXPECT_EQ(LoosenedField(current, current), std::nullopt);
  TenantPolicy tighter = current;
  tighter.rate.per_minute = 50;
  tighter.max_keys = 5;
  tighter.allowed_peers = PeerSet{{1000}, {}};
  tighter.max_concurrent_requests = 4;  // a new limit
  tighter.mfa_required = true;
  tighter.time_windows.push_back({.days = 1, .from_minute = 0, .until_minute = 60});
  EXPECT_EQ(LoosenedField(current, tighter), std::nullopt);
  EXPECT_EQ(LoosenedField(TenantPolicy{}, tighter), std::nullopt);  // none in force
}

TEST(LoosenedFieldTest, EachLooserFieldIsNamed) {
  TenantPolicy current;
  current.key_rotation_days = 30;
  current.rate.per_minute = 100;
  current.rate.burst = 10;
  current.rate.per_day = 1000;
  current.max_concurrent_requests = 4;
  current.max_keys = 10;
  current.max_data_keys_per_day = 100;
  current.max_data_size = 1000;
  current.mfa_required = true;
  current.allowed_peers = PeerSet{{1000}, {}};
  current.time_windows.push_back({.days = 1, .from_minute = 0, .until_minute = 60});
  current.audit_retention_days = 365;
  struct Case {
    std::function<void(TenantPolicy&)> loosen;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](TenantPolicy& p) { p.key_rotation_days = 31; }, "data_protection.key_rotation_days"},
      {[](TenantPolicy& p) { p.key_rotation_days.reset(); }, "data_protection.key_rotation_days"},
      {[](TenantPolicy& p) { p.rate.per_minute = 101; }, "rate_limiting.requests_per_minute"},
      {[](TenantPolicy& p) { p.rate.burst.reset(); }, "rate_limiting.burst_size"},
      {[](TenantPolicy& p) { p.rate.per_day.reset(); }, "api.requests_per_day"},
      {[](TenantPolicy& p) { p.max_concurrent_requests = 5; }, "compute.max_concurrent_requests"},
      {[](TenantPolicy& p) { p.max_keys.reset(); }, "keys.max_keys"},
      {[](TenantPolicy& p) { p.max_data_keys_per_day = 101; }, "keys.max_data_keys_per_day"},
      {[](TenantPolicy& p) { p.max_data_size = 1001; }, "storage.max_data_size"},
      {[](TenantPolicy& p) { p.mfa_required = false; }, "access_control.mfa_required"},
      {[](TenantPolicy& p) { p.allowed_peers.reset(); }, "access_control.allowed_peers"},
      {[](TenantPolicy& p) { p.allowed_peers->gids.insert(100); }, "access_control.allowed_peers"},
      {[](TenantPolicy& p) { p.time_windows.clear(); }, "access_control.time_windows"},
      {[](TenantPolicy& p) { p.time_windows[0].until_minute = 61; }, "access_control.time_windows"},
      {[](TenantPolicy& p) { p.audit_retention_days = 30; }, "audit_logging.retention_days"},
      {[](TenantPolicy& p) { p.log_data_access = false; }, "audit_logging"},
  };
  for (const Case& c : cases) {
    TenantPolicy proposed = current;
    c.loosen(proposed);
    const std::optional<std::string> field = LoosenedField(current, proposed);
    ASSERT_TRUE(field.has_value()) << c.field;
    EXPECT_THAT(*field, HasSubstr(c.field));
  }
}

// Retention prunes the audit log: a first retention, or a shorter one, keeps
// less (looser); dropping it keeps everything (tighter).
TEST(LoosenedFieldTest, RetentionIsLooserWhenItKeepsLess) {
  TenantPolicy forever;
  TenantPolicy year;
  year.audit_retention_days = 365;
  EXPECT_EQ(LoosenedField(forever, year), "security_policies.audit_logging.retention_days");
  EXPECT_EQ(LoosenedField(year, forever), std::nullopt);
  TenantPolicy longer = year;
  longer.audit_retention_days = 3650;
  EXPECT_EQ(LoosenedField(year, longer), std::nullopt);
  EXPECT_TRUE(LoosenedField(longer, year).has_value());
}

}  // namespace
}  // namespace kmsd
