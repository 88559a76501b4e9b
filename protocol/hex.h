// Lowercase hexadecimal: digests in the audit log and backup manifests,
// random names of temporary files. Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kmsd {

std::string Hex(std::span<const uint8_t> bytes);
// Writes 2 * bytes.size() digits at `out` (no terminator): for text that
// must stay in secret memory, such as a generated PIN.
void HexEncode(std::span<const uint8_t> bytes, char* out);
// Fills `out` from exactly 2 * out.size() lowercase hex digits; false (and
// `out` unspecified) for anything else.
bool FromHex(std::string_view hex, std::span<uint8_t> out);
// `bytes` random bytes (OpenSSL's generator) as hex.
std::string RandomHex(size_t bytes);

}  // namespace kmsd
