// Clock: where kmsd reads the time, so tests can inject their own.
// Implementations must be thread-safe.
#pragma once

#include <cstdint>

namespace kmsd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowSeconds() const = 0;  // unix time
};

class SystemClock final : public Clock {
 public:
  int64_t NowSeconds() const override;
};

}  // namespace kmsd
