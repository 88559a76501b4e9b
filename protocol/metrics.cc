#include "protocol/metrics.h"

#include <algorithm>
#include <cmath>

namespace kmsd {

size_t LatencyBucketOf(uint64_t nanos) {
  return static_cast<size_t>(
      std::lower_bound(kLatencyBucketBoundsNanos.begin(), kLatencyBucketBoundsNanos.end(), nanos) -
      kLatencyBucketBoundsNanos.begin());
}

uint64_t EstimateQuantileNanos(std::span<const uint64_t> buckets, double q) {
  if (buckets.size() != kLatencyBuckets || !(q > 0 && q <= 1)) return 0;
  uint64_t total = 0;
  for (uint64_t count : buckets) total += count;
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (static_cast<double>(below + buckets[i]) >= rank && buckets[i] > 0) {
      if (i == kLatencyBucketBoundsNanos.size()) return kLatencyBucketBoundsNanos.back();
      const double lower = i == 0 ? 0.0 : static_cast<double>(kLatencyBucketBoundsNanos[i - 1]);
      const double upper = static_cast<double>(kLatencyBucketBoundsNanos[i]);
      const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
      return static_cast<uint64_t>(std::llround(lower + (upper - lower) * within));
    }
    below += buckets[i];
  }
  return kLatencyBucketBoundsNanos.back();
}

}  // namespace kmsd
