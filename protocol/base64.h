// Standard base64 (RFC 4648 section 4, with padding), as the Encryption SDK's
// signature key in the encryption context and kmsctl's JSON output use it.
// Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kmsd {

std::string Base64Encode(std::span<const uint8_t> bytes);
// nullopt unless `text` is padded standard base64 (no whitespace).
std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text);

}  // namespace kmsd
