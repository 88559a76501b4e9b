// TOTP (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 6 digits, 30-second
// steps, the parameters every authenticator app defaults to, and the
// otpauth:// URI that enrolls one (Google Authenticator's key URI format).
//
// VerifyTotp() accepts the code of the current step or one step either side
// (clock drift), compares in constant time, and refuses a step at or before
// the last one accepted for the same seed: a code cannot be replayed within
// its window. Pure functions over the caller's time; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd {

inline constexpr int64_t kTotpStepSeconds = 30;
inline constexpr size_t kTotpSeedBytes = 20;  // 160 bits, RFC 4226's recommendation
inline constexpr int kTotpDigits = 6;

// RFC 4648 base32 (A-Z2-7), without padding, as otpauth URIs carry it.
SecretBuffer Base32Encode(std::span<const uint8_t> bytes);

// The zero-padded 6-digit HOTP code of `seed` at counter `step`.
std::string HotpCode(std::span<const uint8_t> seed, uint64_t step);

// The step `code` matches among floor(unix_seconds / 30) - 1 .. + 1, later
// than `last_used_step`. ACCESS_DENIED "the TOTP code is not valid" for a
// code that is not 6 digits or matches no step, "the TOTP code was already
// used" for one matching only steps at or before `last_used_step`.
Result<uint64_t> VerifyTotp(std::span<const uint8_t> seed, std::string_view code,
                            int64_t unix_seconds, std::optional<uint64_t> last_used_step);

// otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30,
// with ISSUER and ACCOUNT percent-encoded (RFC 3986 unreserved characters
// kept). Holds the seed: a SecretBuffer.
SecretBuffer OtpauthUri(std::span<const uint8_t> seed, std::string_view issuer,
                        std::string_view account);

}  // namespace kmsd
