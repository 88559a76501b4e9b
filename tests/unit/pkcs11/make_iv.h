// A test IV whose bytes count up from `seed`. Header-only.
#pragma once

#include <cstdint>

#include "protocol/ciphertext.h"

namespace kmsd {

inline Iv MakeIv(uint8_t seed) {
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<uint8_t>(seed + i);
  return iv;
}

}  // namespace kmsd
