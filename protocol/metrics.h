// Request metrics as kmsd reports them in `status` (docs/OPERATIONS.md):
// the latency histogram's bucket bounds, shared by the daemon that counts and
// the clients that read (kmsctl's percentiles and Prometheus text), and the
// quantile estimate over such a histogram. Pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace kmsd {

// Upper bounds (inclusive, in nanoseconds) of the latency buckets; one more
// bucket past the last counts everything slower (Prometheus's +Inf).
inline constexpr std::array<uint64_t, 16> kLatencyBucketBoundsNanos = {
    25'000,      50'000,      100'000,       250'000,      500'000,    1'000'000,
    2'500'000,   5'000'000,   10'000'000,    25'000'000,   50'000'000, 100'000'000,
    250'000'000, 500'000'000, 1'000'000'000, 5'000'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBucketBoundsNanos.size() + 1;

// The index of the bucket that counts a request of `nanos`.
size_t LatencyBucketOf(uint64_t nanos);

// The q-quantile (0 < q <= 1) of the requests counted in `buckets` (one count
// per bucket, not cumulative; kLatencyBuckets of them), in nanoseconds:
// linear within the bucket it falls in, as Prometheus's histogram_quantile
// does; a quantile in the last (open) bucket is the last bound. Zero when
// nothing was counted or `buckets` has the wrong size.
uint64_t EstimateQuantileNanos(std::span<const uint64_t> buckets, double q);

}  // namespace kmsd
