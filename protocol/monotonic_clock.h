// MonotonicClock: where kmsd measures durations (time spent queued, rate-limit
// windows), so tests can inject a clock they move by hand.
//
// NowNanos() never goes backwards and has no relation to the wall clock (for
// unix time see protocol/clock.h). SteadyClock reads std::chrono::steady_clock;
// FakeClock stands still until a test moves it. Both are thread-safe; neither
// is copyable, and whoever holds a reference must not outlive the clock.
// RealMonotonicClock() is a process-wide SteadyClock that lives forever.
#pragma once

#include <atomic>
#include <cstdint>

namespace kmsd {

class MonotonicClock {
 public:
  MonotonicClock() = default;
  MonotonicClock(const MonotonicClock&) = delete;
  MonotonicClock& operator=(const MonotonicClock&) = delete;
  virtual ~MonotonicClock() = default;

  virtual int64_t NowNanos() const = 0;
  int64_t NowMillis() const { return NowNanos() / 1'000'000; }
};

class SteadyClock final : public MonotonicClock {
 public:
  int64_t NowNanos() const override;
};

// The process-wide SteadyClock.
const MonotonicClock& RealMonotonicClock();

// For tests: starts at `start_nanos` and moves only when told.
class FakeClock final : public MonotonicClock {
 public:
  explicit FakeClock(int64_t start_nanos = 0) : now_(start_nanos) {}
  int64_t NowNanos() const override { return now_.load(); }
  void AdvanceNanos(int64_t nanos) { now_.fetch_add(nanos); }
  void AdvanceMillis(int64_t millis) { AdvanceNanos(millis * 1'000'000); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace kmsd
