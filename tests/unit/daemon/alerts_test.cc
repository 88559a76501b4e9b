// Alerts (daemon/alerts.h): journal entries with their ids and priorities,
// once a minute per subject, counted every time; what Observe makes of a
// request's outcome.
#include "daemon/alerts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "tests/support/fake_system.h"

namespace kmsd {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

class AlertsTest : public ::testing::Test {
 protected:
  uint64_t Count(std::string_view kind) const {
    for (const auto& alert : alerts_.Snapshot()) {
      if (alert.kind == kind) return alert.count;
    }
    ADD_FAILURE() << "no kind " << kind;
    return 0;
  }
  RequestContext Outcome(Code code, uint64_t uid = 1000, std::string tenant = "acme") {
    RequestContext context;
    context.caller.uid = uid;
    context.tenant = std::move(tenant);
    context.op_name = "encrypt";
    context.outcome = Status(code, "why");
    return context;
  }

  testing::FakeSystem system_;
  TEST_ScopedSystem scoped_{system_};
  Alerts::Clock::time_point now_ = Alerts::Clock::now();
  Alerts alerts_{[this] { return now_; }};
};

TEST_F(AlertsTest, KindsHaveDistinctIdsAndNames) {
  std::set<std::string_view> ids, names;
  for (const auto& info : AlertKinds()) {
    EXPECT_EQ(info.message_id.size(), 32u) << info.name;
    ids.insert(info.message_id);
    names.insert(info.name);
  }
  EXPECT_EQ(ids.size(), kAlertKinds);
  EXPECT_EQ(names.size(), kAlertKinds);
}

TEST_F(AlertsTest, AJournalEntryOncePerMinutePerSubjectEveryOneCounted) {
  alerts_.Raise(AlertKind::kTokenUnavailable, "token", "gone");
  alerts_.Raise(AlertKind::kTokenUnavailable, "token", "still gone");
  alerts_.Raise(AlertKind::kTokenUnavailable, "other", "gone too");
  ASSERT_EQ(system_.calls().journal.size(), 2u);
  const std::vector<std::string> entry = system_.calls().journal[0];
  EXPECT_THAT(entry, Contains("MESSAGE_ID=7e61de7d3b3744259a67d27f1b3f51d5"));
  EXPECT_THAT(entry, Contains("PRIORITY=2"));
  EXPECT_THAT(entry, Contains("KMSD_ALERT=token_unavailable"));
  EXPECT_THAT(entry, Contains("KMSD_SUBJECT=token"));
  EXPECT_THAT(entry, Contains("MESSAGE=kmsd alert token_unavailable: gone"));
  EXPECT_EQ(Count("token_unavailable"), 3u);

  now_ += std::chrono::seconds(61);
  alerts_.Raise(AlertKind::kTokenUnavailable, "token", "back to gone");
  ASSERT_EQ(system_.calls().journal.size(), 3u);
  EXPECT_THAT(system_.calls().journal[2],
              Contains("MESSAGE=kmsd alert token_unavailable: back to gone (and 1 more in the "
                       "last minute)"));
}

TEST_F(AlertsTest, RepeatedDenialsOfOnePeerWithinTheWindow) {
  for (size_t i = 0; i + 1 < kDenialThreshold; ++i) alerts_.Observe(Outcome(Code::kAccessDenied));
  alerts_.Observe(Outcome(Code::kAccessDenied, 2000));  // another peer's
  EXPECT_EQ(Count("repeated_denials"), 0u);
  now_ += kDenialWindow + std::chrono::seconds(1);  // the first ones age out
  alerts_.Observe(Outcome(Code::kAccessDenied));
  EXPECT_EQ(Count("repeated_denials"), 0u);
  for (size_t i = 0; i + 1 < kDenialThreshold; ++i) alerts_.Observe(Outcome(Code::kAccessDenied));
  EXPECT_EQ(Count("repeated_denials"), 1u);
  ASSERT_EQ(system_.calls().journal.size(), 1u);
  EXPECT_THAT(system_.calls().journal[0], Contains("KMSD_SUBJECT=uid 1000"));
}

TEST_F(AlertsTest, OutcomesThatRaiseAndOnesThatDoNot) {
  alerts_.Observe(Outcome(Code::kQuotaExceeded));
  alerts_.Observe(Outcome(Code::kThrottled, 1000, ""));
  alerts_.Observe(Outcome(Code::kAuditUnavailable));
  alerts_.Observe(Outcome(Code::kTokenUnavailable));
  alerts_.Observe(Outcome(Code::kInvalidCiphertext));
  alerts_.Observe(Outcome(Code::kOk));
  EXPECT_EQ(Count("quota_exceeded"), 1u);
  EXPECT_EQ(Count("rate_limited"), 1u);
  EXPECT_EQ(Count("audit_write_failure"), 1u);
  EXPECT_EQ(Count("token_unavailable"), 1u);
  uint64_t total = 0;
  for (const auto& alert : alerts_.Snapshot()) total += alert.count;
  EXPECT_EQ(total, 4u);
  EXPECT_THAT(system_.calls().journal[1], Contains("KMSD_SUBJECT=(no tenant)"));
}

}  // namespace
}  // namespace kmsd
