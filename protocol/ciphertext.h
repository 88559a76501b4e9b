// The kmsd ciphertext format, version 1 (docs/FORMATS.md is the reference).
//
//   offset size  field
//   0      2     magic "k1" (0x6b 0x31)
//   2      16    key id (random, names the key; unique across tenants)
//   18     4     key version, big-endian, >= 1
//   22     12    IV (random 96 bits, NIST SP 800-38D 8.2.2)
//   34     n     AES-256-GCM ciphertext
//   34+n   16    GCM tag
//
// The authenticated data is BuildAad(): the first 22 bytes (magic, key id,
// version), the tenant and the canonical encoding of the encryption context.
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "protocol/hex.h"
#include "protocol/status.h"

namespace kmsd {

inline constexpr size_t kKeyIdSize = 16;
inline constexpr size_t kIvSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kBoundHeaderSize = 2 + kKeyIdSize + 4;  // authenticated prefix
inline constexpr size_t kHeaderSize = kBoundHeaderSize + kIvSize;
inline constexpr size_t kCiphertextOverhead = kHeaderSize + kTagSize;

using KeyId = std::array<uint8_t, kKeyIdSize>;
using Iv = std::array<uint8_t, kIvSize>;
// Sorted by key, so iteration order is the canonical order.
using EncryptionContext = std::map<std::string, std::string>;

std::string KeyIdToHex(const KeyId& id);
Result<KeyId> KeyIdFromHex(std::string_view hex);

struct ParsedCiphertext {
  KeyId key_id;
  uint32_t version = 0;
  Iv iv;
  std::span<const uint8_t> bound_header;       // bytes 0..21, part of the AAD
  std::span<const uint8_t> encrypted_and_tag;  // GCM output, tag last
};

// INVALID_CIPHERTEXT when too short, wrong magic or version 0. The spans point
// into `ciphertext`.
Result<ParsedCiphertext> ParseCiphertext(std::span<const uint8_t> ciphertext);

// The 34-byte header for a new ciphertext.
std::vector<uint8_t> BuildHeader(const KeyId& key_id, uint32_t version, const Iv& iv);

// AAD = bound header || u32 len || tenant || u32 count || (u32 len || k || u32 len || v)*
// with context entries in byte order of their keys. All integers big-endian.
std::vector<uint8_t> BuildAad(std::span<const uint8_t> bound_header, std::string_view tenant,
                              const EncryptionContext& context);

// Limits on a caller's encryption context: at most 64 entries, keys 1-256 and
// values 0-4096 bytes.
Status ValidateEncryptionContext(const EncryptionContext& context);

// Encryption context keys kmsd keeps for itself (a TOTP seed's wrapping):
// a request carrying one is INVALID_ARGUMENT, so no caller can decrypt what
// kmsd encrypted for its own use.
inline constexpr std::string_view kReservedContextPrefix = "kmsd:";

}  // namespace kmsd
