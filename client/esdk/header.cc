#include "client/esdk/header.h"

#include <cstdio>
#include <set>

#include "protocol/utf8.h"

namespace kmsd::esdk {
namespace {

constexpr uint8_t kVersion1Type = 0x80;
constexpr size_t kVersion1MessageIdBytes = 16;
constexpr size_t kVersion2MessageIdBytes = 32;
constexpr size_t kMaxU16 = 0xFFFF;

Status Malformed(const std::string& why) {
  return Status(Code::kInvalidCiphertext, "not a message kmsd can read: " + why);
}

std::string_view AsText(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Result<EncryptionContext> ParseContextPairs(std::span<const uint8_t> bytes) {
  ByteReader in(bytes);
  const uint16_t count = in.U16();
  if (count == 0) return Error(Malformed("an encryption context with no pairs"));
  EncryptionContext context;
  for (uint16_t i = 0; i < count && !in.is_short(); ++i) {
    const std::string_view key = AsText(in.Take(in.U16()));
    const std::string_view value = AsText(in.Take(in.U16()));
    if (in.is_short()) break;
    if (!IsUtf8(key) || !IsUtf8(value)) {
      return Error(Malformed("an encryption context pair that is not UTF-8"));
    }
    if (!context.emplace(key, value).second) {
      return Error(Malformed("the encryption context key '" + std::string(key) + "' twice"));
    }
  }
  if (in.is_short() || in.remaining() != 0) {
    return Error(Malformed("the encryption context's length does not match its pairs"));
  }
  return context;
}

void PutEdks(Bytes& out, const std::vector<EncryptedDataKey>& edks) {
  PutU16(out, static_cast<uint16_t>(edks.size()));
  for (const EncryptedDataKey& edk : edks) {
    PutU16(out, static_cast<uint16_t>(edk.provider_id.size()));
    PutBytes(out, edk.provider_id);
    PutU16(out, static_cast<uint16_t>(edk.provider_info.size()));
    PutBytes(out, edk.provider_info);
    PutU16(out, static_cast<uint16_t>(edk.ciphertext.size()));
    PutBytes(out, edk.ciphertext);
  }
}

Status CheckEdks(const std::vector<EncryptedDataKey>& edks) {
  if (edks.empty() || edks.size() > kMaxU16) {
    return Status(Code::kInvalidArgument, "a message needs 1 to 65535 encrypted data keys");
  }
  for (const EncryptedDataKey& edk : edks) {
    if (edk.provider_id.size() > kMaxU16 || edk.provider_info.size() > kMaxU16 ||
        edk.ciphertext.size() > kMaxU16 || !IsUtf8(edk.provider_id)) {
      return Status(Code::kInvalidArgument, "an encrypted data key's field is over 65535 bytes");
    }
  }
  return OkStatus();
}

// The fields after the message id; `in` is past the version's own fields.
Status ReadBody(ByteReader& in, Header& header, const HeaderLimits& limits, bool* need_more) {
  const std::span<const uint8_t> aad = in.Take(in.U16());
  if (in.is_short()) {
    *need_more = true;
    return OkStatus();
  }
  if (!aad.empty()) {
    ASSIGN_OR_RETURN(header.context, ParseContextPairs(aad));
  }
  const uint16_t edk_count = in.U16();
  if (in.is_short()) {
    *need_more = true;
    return OkStatus();
  }
  if (edk_count == 0) return Malformed("no encrypted data keys");
  if (edk_count > limits.max_edks) {
    return Malformed(std::to_string(edk_count) + " encrypted data keys, over the limit of " +
                     std::to_string(limits.max_edks));
  }
  for (uint16_t i = 0; i < edk_count; ++i) {
    EncryptedDataKey edk;
    edk.provider_id = std::string(AsText(in.Take(in.U16())));
    const auto info = in.Take(in.U16());
    const auto ciphertext = in.Take(in.U16());
    if (in.is_short()) {
      *need_more = true;
      return OkStatus();
    }
    if (!IsUtf8(edk.provider_id)) return Malformed("a key provider id that is not UTF-8");
    edk.provider_info.assign(info.begin(), info.end());
    edk.ciphertext.assign(ciphertext.begin(), ciphertext.end());
    header.edks.push_back(std::move(edk));
  }
  return OkStatus();
}

Status CheckFraming(const Header& header, const HeaderLimits& limits) {
  if (header.content_type == ContentType::kFramed) {
    if (header.frame_length == 0 || header.frame_length > limits.max_frame_length) {
      return Malformed("a frame length of " + std::to_string(header.frame_length) +
                       " bytes (this reader takes 1 to " + std::to_string(limits.max_frame_length) +
                       ")");
    }
  } else if (header.content_type == ContentType::kNonFramed) {
    if (header.frame_length != 0) return Malformed("a frame length for non-framed content");
  } else {
    return Malformed("an unknown content type");
  }
  return OkStatus();
}

}  // namespace

Result<Bytes> SerializeContext(const EncryptionContext& context) {
  Bytes out;
  if (context.empty()) return out;
  if (context.size() > kMaxU16) {
    return Error(Status(Code::kInvalidArgument, "over 65535 encryption context pairs"));
  }
  PutU16(out, static_cast<uint16_t>(context.size()));
  for (const auto& [key, value] : context) {
    if (key.size() > kMaxU16 || value.size() > kMaxU16 || !IsUtf8(key) || !IsUtf8(value)) {
      return Error(Status(Code::kInvalidArgument,
                          "an encryption context key or value that is not UTF-8 or is "
                          "over 65535 bytes"));
    }
    PutU16(out, static_cast<uint16_t>(key.size()));
    PutBytes(out, key);
    PutU16(out, static_cast<uint16_t>(value.size()));
    PutBytes(out, value);
  }
  if (out.size() > kMaxU16) {
    return Error(Status(Code::kInvalidArgument, "an encryption context over 65535 bytes"));
  }
  return out;
}

Result<Bytes> SerializeHeaderBody(const Header& header) {
  const Suite& suite = *header.suite;
  RETURN_IF_ERROR(CheckEdks(header.edks));
  ASSIGN_OR_RETURN(const Bytes context, SerializeContext(header.context));
  Bytes out;
  PutU8(out, suite.message_version);
  if (suite.message_version == 1) PutU8(out, kVersion1Type);
  PutU16(out, suite.id);
  PutBytes(out, header.message_id);
  PutU16(out, static_cast<uint16_t>(context.size()));
  PutBytes(out, context);
  PutEdks(out, header.edks);
  PutU8(out, static_cast<uint8_t>(header.content_type));
  if (suite.message_version == 1) {
    PutU32(out, 0);  // reserved
    PutU8(out, kIvBytes);
  }
  PutU32(out, header.frame_length);
  if (suite.message_version == 2) PutBytes(out, header.commitment);
  return out;
}

Bytes SerializeHeaderAuth(const Header& header) {
  Bytes out;
  if (header.suite->message_version == 1) PutBytes(out, header.header_iv);
  PutBytes(out, header.tag);
  return out;
}

Result<std::optional<ParsedHeader>> ParseHeader(std::span<const uint8_t> bytes,
                                                const HeaderLimits& limits) {
  const auto need_more = [&]() -> Result<std::optional<ParsedHeader>> {
    if (bytes.size() >= limits.max_header_bytes) {
      return Error(Malformed("a header over " + std::to_string(limits.max_header_bytes) +
                             " bytes, this reader's limit"));
    }
    return std::optional<ParsedHeader>();
  };
  ByteReader in(bytes.subspan(0, std::min(bytes.size(), limits.max_header_bytes)));
  ParsedHeader parsed;
  Header& header = parsed.header;
  const uint8_t version = in.U8();
  if (in.is_short()) return need_more();
  if (version != 1 && version != 2) {
    return Error(Malformed("message format version " + std::to_string(version)));
  }
  if (version == 1 && in.U8() != kVersion1Type && !in.is_short()) {
    return Error(Malformed("a version 1 message type other than 0x80"));
  }
  const uint16_t suite_id = in.U16();
  if (in.is_short()) return need_more();
  header.suite = FindSuite(suite_id);
  if (header.suite == nullptr || header.suite->message_version != version) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "%04x", suite_id);
    return Error(Malformed(std::string("algorithm suite 0x") + hex + " in a version " +
                           std::to_string(version) + " message"));
  }
  const auto id = in.Take(version == 1 ? kVersion1MessageIdBytes : kVersion2MessageIdBytes);
  header.message_id.assign(id.begin(), id.end());
  bool more = false;
  RETURN_IF_ERROR(ReadBody(in, header, limits, &more));
  if (more) return need_more();
  header.content_type = static_cast<ContentType>(in.U8());
  if (version == 1) {
    const uint32_t reserved = in.U32();
    const uint8_t iv_length = in.U8();
    if (!in.is_short() && reserved != 0) return Error(Malformed("reserved bytes that are not 0"));
    if (!in.is_short() && iv_length != kIvBytes) return Error(Malformed("an IV length not 12"));
  }
  header.frame_length = in.U32();
  if (version == 2) {
    const auto data = in.Take(header.suite->suite_data_bytes);
    header.commitment.assign(data.begin(), data.end());
  }
  if (in.is_short()) return need_more();
  RETURN_IF_ERROR(CheckFraming(header, limits));
  header.body.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(in.offset()));
  if (version == 1) {
    const auto iv = in.Take(kIvBytes);
    header.header_iv.assign(iv.begin(), iv.end());
  }
  const auto tag = in.Take(kTagBytes);
  if (in.is_short()) return need_more();
  std::copy(tag.begin(), tag.end(), header.tag.begin());
  parsed.size = in.offset();
  return std::optional<ParsedHeader>(std::move(parsed));
}

}  // namespace kmsd::esdk
