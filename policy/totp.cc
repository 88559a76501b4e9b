// HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1 from OpenSSL; the
// intermediate MACs and codes are wiped once compared.
#include "policy/totp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <limits>

#include "policy/floor_div.h"

namespace kmsd {
namespace {

constexpr std::string_view kBase32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kSha1Bytes = 20;
using CodeChars = std::array<char, kTotpDigits>;

// The 6 digits of HOTP(seed, counter) into `out`; false when OpenSSL failed.
bool ComputeHotp(std::span<const uint8_t> seed, uint64_t counter, CodeChars& out) {
  std::array<uint8_t, 8> message;
  for (size_t i = 0; i < message.size(); ++i) {
    message[i] = static_cast<uint8_t>(counter >> (8 * (message.size() - 1 - i)));
  }
  std::array<uint8_t, EVP_MAX_MD_SIZE> mac;
  size_t mac_size = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA1", nullptr, seed.data(), seed.size(), message.data(),
                message.size(), mac.data(), mac.size(), &mac_size) == nullptr ||
      mac_size != kSha1Bytes) {
    OPENSSL_cleanse(mac.data(), mac.size());
    return false;
  }
  // Dynamic truncation (RFC 4226 section 5.3).
  const size_t offset = mac[kSha1Bytes - 1] & 0x0f;
  uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                    (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                    (static_cast<uint32_t>(mac[offset + 2]) << 8) |
                    static_cast<uint32_t>(mac[offset + 3]);
  OPENSSL_cleanse(mac.data(), mac.size());
  for (int i = kTotpDigits - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>('0' + binary % 10);
    binary /= 10;
  }
  return true;
}

bool IsWellFormedCode(std::string_view code) {
  if (code.size() != static_cast<size_t>(kTotpDigits)) return false;
  for (char c : code) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 3986 percent-encoding: everything but the unreserved characters.
std::string PercentEncode(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char c : text) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<uint8_t>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0f]);
    }
  }
  return out;
}

}  // namespace

SecretBuffer Base32Encode(std::span<const uint8_t> bytes) {
  SecretBuffer out((bytes.size() * 8 + 4) / 5);
  uint8_t* write = out.RevealMutableData();
  uint32_t buffer = 0;  // holds fewer than 13 pending bits
  int bits = 0;
  for (uint8_t byte : bytes) {
    buffer = ((buffer << 8) | byte) & 0x1fff;
    bits += 8;
    while (bits >= 5) {
      *write++ = static_cast<uint8_t>(kBase32Alphabet[(buffer >> (bits - 5)) & 0x1f]);
      bits -= 5;
    }
  }
  if (bits > 0) *write++ = static_cast<uint8_t>(kBase32Alphabet[(buffer << (5 - bits)) & 0x1f]);
  return out;
}

std::string HotpCode(std::span<const uint8_t> seed, uint64_t step) {
  CodeChars code;
  if (!ComputeHotp(seed, step, code)) return "";  // matches no well-formed code
  std::string out(code.data(), code.size());
  OPENSSL_cleanse(code.data(), code.size());
  return out;
}

Result<uint64_t> VerifyTotp(std::span<const uint8_t> seed, std::string_view code,
                            int64_t unix_seconds, std::optional<uint64_t> last_used_step) {
  if (!IsWellFormedCode(code)) return Error(Code::kAccessDenied, "the TOTP code is not valid");
  const int64_t current = FloorDiv(unix_seconds, kTotpStepSeconds);
  // Every candidate step is computed and compared (no early exit). Of the
  // steps that match, the latest is the one consumed: were the code to match
  // two steps, a replay could not use the later one.
  std::optional<uint64_t> accepted;
  bool replayed = false;
  for (int64_t delta = -1; delta <= 1; ++delta) {
    if ((delta > 0 && current == std::numeric_limits<int64_t>::max()) || current + delta < 0) {
      continue;
    }
    const auto step = static_cast<uint64_t>(current + delta);
    CodeChars expected;
    if (!ComputeHotp(seed, step, expected)) {
      return Error(Code::kInternal, "cannot compute a TOTP code (HMAC-SHA1 failed)");
    }
    const bool match = CRYPTO_memcmp(expected.data(), code.data(), expected.size()) == 0;
    OPENSSL_cleanse(expected.data(), expected.size());
    if (!match) continue;
    if (last_used_step && step <= *last_used_step) {
      replayed = true;
    } else {
      accepted = step;
    }
  }
  if (accepted) return *accepted;
  if (replayed) return Error(Code::kAccessDenied, "the TOTP code was already used");
  return Error(Code::kAccessDenied, "the TOTP code is not valid");
}

SecretBuffer OtpauthUri(std::span<const uint8_t> seed, std::string_view issuer,
                        std::string_view account) {
  const std::string issuer_encoded = PercentEncode(issuer);
  const std::string account_encoded = PercentEncode(account);
  const SecretBuffer secret = Base32Encode(seed);
  const std::string_view secret_text(reinterpret_cast<const char*>(secret.RevealData()),
                                     secret.size());
  const std::array<std::string_view, 9> parts = {
      "otpauth://totp/", issuer_encoded, ":",
      account_encoded,   "?secret=",     secret_text,
      "&issuer=",        issuer_encoded, "&algorithm=SHA1&digits=6&period=30"};
  size_t size = 0;
  for (std::string_view part : parts) size += part.size();
  SecretBuffer out(size);
  uint8_t* write = out.RevealMutableData();
  for (std::string_view part : parts) {
    if (part.empty()) continue;
    std::memcpy(write, part.data(), part.size());
    write += part.size();
  }
  return out;
}

}  // namespace kmsd
