// FloorDiv: integer division rounding toward negative infinity (times before
// 1970 and negative offsets fall in the right step or day). b must not be 0.
#pragma once

#include <cstdint>

namespace kmsd {

constexpr int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace kmsd
