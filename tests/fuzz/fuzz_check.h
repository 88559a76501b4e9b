// The fuzz targets' invariant check: a broken invariant is a finding, so it
// stops the run the way a crash does (libFuzzer saves the input).
#pragma once

namespace kmsd::fuzz {

inline void Check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace kmsd::fuzz
