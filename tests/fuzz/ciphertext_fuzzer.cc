// libFuzzer target: a ciphertext as a caller hands it to `decrypt`.
//
// ParseCiphertext, then the AAD built from what it returned; a parsed header
// must rebuild to the same bytes. Also KeyIdFromHex on the same input, whose
// successes must round-trip through KeyIdToHex.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/ciphertext.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto parsed = kmsd::ParseCiphertext(input);
  if (!parsed) {
    if (parsed.error().code() != kmsd::Code::kInvalidCiphertext) __builtin_trap();
  } else {
    if (size < kmsd::kCiphertextOverhead || parsed->version == 0) __builtin_trap();
    const auto header = kmsd::BuildHeader(parsed->key_id, parsed->version, parsed->iv);
    if (!std::equal(header.begin(), header.end(), data)) __builtin_trap();
    if (parsed->encrypted_and_tag.size() != size - kmsd::kHeaderSize) __builtin_trap();
    const auto aad = kmsd::BuildAad(parsed->bound_header, "tenant", {{"k", "v"}});
    if (aad.size() != kmsd::kBoundHeaderSize + 4 + 6 + 4 + 4 + 1 + 4 + 1) __builtin_trap();
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto id = kmsd::KeyIdFromHex(text)) {
    if (kmsd::KeyIdToHex(*id) != text) __builtin_trap();
  }
  return 0;
}
