#include "daemon/metrics.h"

#include <chrono>

namespace kmsd {

RequestMetrics::RequestMetrics() : cells_(std::make_unique<Cells>()) {}
RequestMetrics::~RequestMetrics() = default;

void RequestMetrics::Record(const RequestContext& context) {
  const size_t op = context.op != nullptr ? static_cast<size_t>(context.op->id) : kOperationCount;
  const size_t code = static_cast<size_t>(context.outcome.code());
  if (op > kOperationCount || code >= kCodes) return;
  const auto elapsed = context.finished - context.received;
  const uint64_t nanos =
      elapsed.count() > 0
          ? static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count())
          : 0;
  Cell& cell = (*cells_)[op][code];
  cell.count.fetch_add(1, std::memory_order_relaxed);
  cell.latency_sum_nanos.fetch_add(nanos, std::memory_order_relaxed);
  cell.buckets[LatencyBucketOf(nanos)].fetch_add(1, std::memory_order_relaxed);
}

std::vector<ops::RequestCounts> RequestMetrics::Snapshot() const {
  std::vector<ops::RequestCounts> out;
  for (size_t op = 0; op <= kOperationCount; ++op) {
    for (size_t code = 0; code < kCodes; ++code) {
      const Cell& cell = (*cells_)[op][code];
      const uint64_t count = cell.count.load(std::memory_order_relaxed);
      if (count == 0) continue;
      ops::RequestCounts counts{
          .op = op < kOperationCount ? std::string(Operations()[op].name) : "unknown",
          .code = std::string(CodeName(static_cast<Code>(code))),
          .count = count,
          .latency_sum_nanos = cell.latency_sum_nanos.load(std::memory_order_relaxed),
          .latency_buckets = {}};
      counts.latency_buckets.reserve(kLatencyBuckets);
      for (const auto& bucket : cell.buckets) {
        counts.latency_buckets.push_back(bucket.load(std::memory_order_relaxed));
      }
      out.push_back(std::move(counts));
    }
  }
  return out;
}

}  // namespace kmsd
