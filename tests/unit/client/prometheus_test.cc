#include "client/prometheus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/metrics.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

ops::StatusReply SampleStatus() {
  ops::StatusReply status;
  status.version = "1.2\"x\\\n";
  status.protocol = 1;
  status.token = {.label = "t", .manufacturer = "m", .model = "x", .available = false};
  status.tenants = 2;
  ops::RequestCounts counts{.op = "encrypt",
                            .code = "OK",
                            .count = 3,
                            .latency_sum_nanos = 1'500'000,
                            .latency_buckets = std::vector<uint64_t>(kLatencyBuckets, 0)};
  counts.latency_buckets[0] = 1;
  counts.latency_buckets[2] = 2;
  status.requests.push_back(counts);
  status.alerts.push_back({.kind = "repeated_denials", .count = 4});
  return status;
}

TEST(PrometheusTextTest, CountersHistogramsAndEscapedLabels) {
  const std::string text = PrometheusText(SampleStatus());
  EXPECT_THAT(text, HasSubstr("kmsd_build_info{version=\"1.2\\\"x\\\\\\n\",protocol=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kmsd_token_available{label=\"t\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("kmsd_tenants 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE kmsd_requests_total counter\n"
                              "kmsd_requests_total{op=\"encrypt\",code=\"OK\"} 3\n"));
  // Buckets are cumulative and end with +Inf = count.
  EXPECT_THAT(text, HasSubstr("{op=\"encrypt\",code=\"OK\",le=\"2.5e-05\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("{op=\"encrypt\",code=\"OK\",le=\"5e-05\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("{op=\"encrypt\",code=\"OK\",le=\"0.0001\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("{op=\"encrypt\",code=\"OK\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("kmsd_request_duration_seconds_sum{op=\"encrypt\",code=\"OK\"} "
                              "0.0015\n"));
  EXPECT_THAT(text, HasSubstr("kmsd_alerts_total{kind=\"repeated_denials\"} 4\n"));
}

}  // namespace
}  // namespace kmsd
