#include "protocol/monotonic_clock.h"

#include <chrono>

namespace kmsd {

int64_t SteadyClock::NowNanos() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const MonotonicClock& RealMonotonicClock() {
  static const SteadyClock* const clock = new SteadyClock();  // never destroyed: used at exit too
  return *clock;
}

}  // namespace kmsd
