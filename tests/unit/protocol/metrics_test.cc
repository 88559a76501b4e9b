#include "protocol/metrics.h"

#include <gtest/gtest.h>

#include <vector>

namespace kmsd {
namespace {

TEST(LatencyBucketTest, BoundsAreInclusiveAndTheLastBucketIsOpen) {
  EXPECT_EQ(LatencyBucketOf(0), 0u);
  EXPECT_EQ(LatencyBucketOf(25'000), 0u);
  EXPECT_EQ(LatencyBucketOf(25'001), 1u);
  EXPECT_EQ(LatencyBucketOf(kLatencyBucketBoundsNanos.back()), kLatencyBuckets - 2);
  EXPECT_EQ(LatencyBucketOf(kLatencyBucketBoundsNanos.back() + 1), kLatencyBuckets - 1);
}

TEST(EstimateQuantileTest, InterpolatesWithinTheBucketTheRankFallsIn) {
  std::vector<uint64_t> buckets(kLatencyBuckets, 0);
  buckets[1] = 10;  // ten requests in (25 us, 50 us]
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0.5), 37'500u);
  EXPECT_EQ(EstimateQuantileNanos(buckets, 1.0), 50'000u);
  buckets[5] = 10;  // ten more in (500 us, 1 ms]
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0.5), 50'000u);
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0.75), 750'000u);
}

TEST(EstimateQuantileTest, OpenBucketEmptyHistogramAndBadInput) {
  std::vector<uint64_t> buckets(kLatencyBuckets, 0);
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0.5), 0u);
  buckets.back() = 3;
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0.99), kLatencyBucketBoundsNanos.back());
  EXPECT_EQ(EstimateQuantileNanos(buckets, 0), 0u);
  EXPECT_EQ(EstimateQuantileNanos(buckets, 1.5), 0u);
  EXPECT_EQ(EstimateQuantileNanos(std::vector<uint64_t>{1, 2}, 0.5), 0u);
}

}  // namespace
}  // namespace kmsd
