#include "protocol/hex.h"

#include <openssl/rand.h>

#include <vector>

namespace kmsd {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

void HexEncode(std::span<const uint8_t> bytes, char* out) {
  for (uint8_t byte : bytes) {
    *out++ = kDigits[byte >> 4];
    *out++ = kDigits[byte & 0xf];
  }
}

std::string Hex(std::span<const uint8_t> bytes) {
  std::string out(bytes.size() * 2, '0');
  HexEncode(bytes, out.data());
  return out;
}

bool FromHex(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const int high = DigitValue(hex[2 * i]);
    const int low = DigitValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    out[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return true;
}

std::string RandomHex(size_t bytes) {
  std::vector<uint8_t> random(bytes);
  RAND_bytes(random.data(), static_cast<int>(random.size()));
  return Hex(random);
}

}  // namespace kmsd
