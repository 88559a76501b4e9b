// The ESDK message header (specification: data-format/message-header.md):
// versions 1 and 2, the encryption context's serialization
// (framework/structures.md) and the encrypted data keys.
//
//   version 2: 02 | suite id (2) | message id (32) | AAD | EDKs | content
//              type (1) | frame length (4) | suite data (32) ‖ tag (16)
//   version 1: 01 | 80 | suite id (2) | message id (16) | AAD | EDKs |
//              content type (1) | 00000000 | IV length (1) | frame length
//              (4) ‖ IV (12) | tag (16)
//
// AAD is the context's length (2) then, if not empty, its pairs: a count (2)
// and each key and value as length (2) and UTF-8 bytes, sorted by key bytes.
// The header's tag authenticates the header body (everything before ‖).
//
// ParseHeader reads a header from the start of a byte string that may be
// incomplete (streaming): it says how many bytes the header takes, or that
// more are needed, or why the bytes are not a header kmsd will read. Limits
// (HeaderLimits) are checked as soon as the field that breaks one is read,
// before anything is decrypted. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/esdk/bytes.h"
#include "client/esdk/suite.h"
#include "protocol/ciphertext.h"  // EncryptionContext
#include "protocol/status.h"

namespace kmsd::esdk {

// Added to a signed message's context by the encrypting side: the
// verification key, base64 of the compressed curve point.
inline constexpr std::string_view kPublicKeyContextKey = "aws-crypto-public-key";
// Context keys the SDKs reserve: a caller may not set them.
inline constexpr std::string_view kReservedContextPrefix = "aws-crypto-";

struct EncryptedDataKey {
  std::string provider_id;  // UTF-8
  Bytes provider_info;
  Bytes ciphertext;
  bool operator==(const EncryptedDataKey&) const = default;
};

enum class ContentType : uint8_t { kNonFramed = 1, kFramed = 2 };

struct Header {
  const Suite* suite = nullptr;
  Bytes message_id;  // 32 bytes (version 2) or 16 (version 1)
  EncryptionContext context;
  std::vector<EncryptedDataKey> edks;
  ContentType content_type = ContentType::kFramed;
  uint32_t frame_length = 0;  // 0 when non-framed
  Bytes commitment;           // version 2: the suite data (the commitment key)
  // Header authentication: version 1's IV (zeros when written by the SDKs) and the tag.
  Bytes header_iv;
  std::array<uint8_t, kTagBytes> tag{};
  // The header body exactly as read (what the tag authenticates).
  Bytes body;
};

// What a reader accepts; a header over any of these is refused unread.
struct HeaderLimits {
  size_t max_edks = 16;
  size_t max_header_bytes = 256 * 1024;
  uint32_t max_frame_length = 64u << 20;
};

inline constexpr uint32_t kDefaultFrameLength = 4096;

// The context's serialization (no length prefix); INVALID_ARGUMENT over
// 65535 bytes or pairs, or a key or value that is not UTF-8 or too long.
Result<Bytes> SerializeContext(const EncryptionContext& context);

// The header body for `header` (version from its suite). The suite, message
// id, context, EDKs, frame length and (version 2) commitment must be set.
Result<Bytes> SerializeHeaderBody(const Header& header);
// The header authentication that follows the body: version 2 the tag,
// version 1 the IV then the tag.
Bytes SerializeHeaderAuth(const Header& header);

struct ParsedHeader {
  Header header;
  size_t size = 0;  // bytes of body and authentication
};
// nullopt: `bytes` holds the start of a header and more is needed (never
// when `bytes` is already over the limit). INVALID_CIPHERTEXT for anything
// that is not a header of a known suite within `limits`.
Result<std::optional<ParsedHeader>> ParseHeader(std::span<const uint8_t> bytes,
                                                const HeaderLimits& limits);

}  // namespace kmsd::esdk
