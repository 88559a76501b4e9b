// PKCS#11's fixed-width text fields (CK_TOKEN_INFO's label, manufacturerID and
// model; the label given to C_InitToken): padded with blanks, not
// NUL-terminated (PKCS#11 2.40 base). Plain functions; internal to pkcs11/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace kmsd::pkcs11::internal {

// The text of a field, without its padding (blanks, and NULs that some
// modules write).
inline std::string Trim(const unsigned char* field, size_t size) {
  std::string s(reinterpret_cast<const char*>(field), size);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// Writes `value` into a field of `size` bytes, blank-padded, cut at `size`.
inline void PadInto(unsigned char* field, size_t size, std::string_view value) {
  std::memset(field, ' ', size);
  std::memcpy(field, value.data(), std::min(size, value.size()));
}

}  // namespace kmsd::pkcs11::internal
