// Small helpers every kind of test uses: the code a call returned (for
// EXPECT_EQ), a string's bytes, patterned bytes;
// whether the build is under AddressSanitizer. Header-only; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "protocol/status.h"

// 1 when this test binary is built with AddressSanitizer (GCC says so with
// __SANITIZE_ADDRESS__, clang 14 only through __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define KMSD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KMSD_UNDER_ASAN 1
#endif
#endif
#ifndef KMSD_UNDER_ASAN
#define KMSD_UNDER_ASAN 0
#endif

namespace kmsd {

// OK or the code a call failed with.
template <typename T>
Code CodeOf(const Result<T>& result) {
  return result.has_value() ? Code::kOk : result.error().code();
}
inline Code CodeOf(const Status& status) { return status.code(); }

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// `size` bytes of a fixed pattern (i * 31 + seed), for data whose content
// does not matter but must not be all one byte.
inline std::vector<uint8_t> PatternBytes(size_t size, uint8_t seed = 1) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 31 + seed);
  return out;
}

}  // namespace kmsd
