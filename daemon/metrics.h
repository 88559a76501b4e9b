// RequestMetrics: every request's operation, outcome and latency since start,
// counted by the record stage (Pipeline::Finish) and reported by `status`
// (protocol/operation_types.h's RequestCounts; latency buckets in
// protocol/metrics.h). Latency runs from receipt to the reply's record.
// Lock-free: relaxed atomic counters, one cell per operation and code, so
// counting costs a few increments and never waits; a snapshot read while
// requests finish may be a few requests behind in some cells. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "daemon/request_context.h"
#include "protocol/metrics.h"
#include "protocol/operation_types.h"

namespace kmsd {

class RequestMetrics {
 public:
  RequestMetrics();
  ~RequestMetrics();
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  void Record(const RequestContext& context);
  // The cells that counted a request, by operation (table order, unknown
  // operations last) then code.
  std::vector<ops::RequestCounts> Snapshot() const;

 private:
  static constexpr size_t kCodes = static_cast<size_t>(Code::kAuditUnavailable) + 1;
  struct Cell {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> latency_sum_nanos{0};
    std::array<std::atomic<uint64_t>, kLatencyBuckets> buckets{};
  };
  // [operation's index, or kOperationCount for one not known][code]
  using Cells = std::array<std::array<Cell, kCodes>, kOperationCount + 1>;
  const std::unique_ptr<Cells> cells_;
};

}  // namespace kmsd
