// The reload rule (daemon/reload.h) and the request counters
// (daemon/metrics.h).
#include <gtest/gtest.h>

#include "daemon/metrics.h"
#include "daemon/reload.h"

namespace kmsd {
namespace {

TEST(CheckReloadableTest, LiveFieldsMayChangeOthersNameThemselves) {
  Config running;
  Config next = running;
  next.log_level = "debug";
  next.max_connections_per_uid = 3;
  next.max_connections = 9;
  next.idle_timeout_ms = 500;
  next.drain_timeout_ms = 200;
  EXPECT_TRUE(CheckReloadable(running, next).ok());

  next.admin_uids = {1000};
  Status refused = CheckReloadable(running, next);
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  EXPECT_NE(refused.message().find("'admins.uids'"), std::string::npos) << refused.message();

  next = running;
  next.lifecycle.max_encryptions_per_version = 7;
  EXPECT_NE(CheckReloadable(running, next).message().find("'lifecycle'"), std::string::npos);
  next = running;
  next.socket_path = "/elsewhere.sock";
  EXPECT_NE(CheckReloadable(running, next).message().find("'socket.path'"), std::string::npos);
}

TEST(ReloadStateTest, KeepsTheLastOutcomeAndCountsAttempts) {
  ReloadState state;
  EXPECT_EQ(state.Get().reloads, 0u);
  EXPECT_TRUE(state.Get().ok);
  state.Record(100, Status(Code::kInvalidArgument, "bad field"));
  EXPECT_FALSE(state.Get().ok);
  EXPECT_EQ(state.Get().message, "bad field");
  state.Record(200, OkStatus());
  EXPECT_TRUE(state.Get().ok);
  EXPECT_EQ(state.Get().at, 200);
  EXPECT_EQ(state.Get().reloads, 2u);
}

RequestContext Finished(const OperationInfo* op, Code code, std::chrono::microseconds took) {
  RequestContext context;
  context.op = op;
  context.outcome = code == Code::kOk ? OkStatus() : Status(code, "x");
  context.received = RequestContext::Clock::now();
  context.finished = context.received + took;
  return context;
}

TEST(RequestMetricsTest, CountsByOperationAndCodeWithLatencyBuckets) {
  RequestMetrics metrics;
  const OperationInfo* encrypt = &InfoOf(OpId::kEncrypt);
  metrics.Record(Finished(encrypt, Code::kOk, std::chrono::microseconds(10)));
  metrics.Record(Finished(encrypt, Code::kOk, std::chrono::microseconds(2000)));
  metrics.Record(Finished(encrypt, Code::kThrottled, std::chrono::microseconds(10)));
  metrics.Record(Finished(nullptr, Code::kUnknownOperation, std::chrono::microseconds(1)));
  const auto snapshot = metrics.Snapshot();
  ASSERT_EQ(snapshot.size(), 3u);
  EXPECT_EQ(snapshot[0].op, "encrypt");
  EXPECT_EQ(snapshot[0].code, "OK");
  EXPECT_EQ(snapshot[0].count, 2u);
  EXPECT_EQ(snapshot[0].latency_sum_nanos, 2'010'000u);
  ASSERT_EQ(snapshot[0].latency_buckets.size(), kLatencyBuckets);
  EXPECT_EQ(snapshot[0].latency_buckets[0], 1u);
  EXPECT_EQ(snapshot[0].latency_buckets[LatencyBucketOf(2'000'000)], 1u);
  EXPECT_EQ(snapshot[1].code, "THROTTLED");
  EXPECT_EQ(snapshot[2].op, "unknown");
  EXPECT_EQ(snapshot[2].code, "UNKNOWN_OPERATION");
}

}  // namespace
}  // namespace kmsd
