#include "protocol/ciphertext.h"

#include <cstring>

namespace kmsd {
namespace {

constexpr uint8_t kMagic0 = 'k';
constexpr uint8_t kMagic1 = '1';

void AppendU32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void AppendBytes(std::vector<uint8_t>& out, std::string_view bytes) {
  AppendU32(out, static_cast<uint32_t>(bytes.size()));
  out.insert(out.end(), bytes.begin(), bytes.end());
}

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

std::string KeyIdToHex(const KeyId& id) { return Hex(id); }

Result<KeyId> KeyIdFromHex(std::string_view hex) {
  if (hex.size() != kKeyIdSize * 2)
    return Error(Code::kInvalidArgument, "key id must be 32 hex digits");
  KeyId id;
  if (!FromHex(hex, id)) return Error(Code::kInvalidArgument, "key id must be 32 hex digits");
  return id;
}

Result<ParsedCiphertext> ParseCiphertext(std::span<const uint8_t> ciphertext) {
  if (ciphertext.size() < kCiphertextOverhead) {
    return Error(Code::kInvalidCiphertext, "ciphertext is shorter than the format's minimum of " +
                                               std::to_string(kCiphertextOverhead) + " bytes");
  }
  if (ciphertext[0] != kMagic0 || ciphertext[1] != kMagic1) {
    return Error(Code::kInvalidCiphertext, "ciphertext does not start with the kmsd v1 magic");
  }
  ParsedCiphertext parsed;
  std::memcpy(parsed.key_id.data(), ciphertext.data() + 2, kKeyIdSize);
  parsed.version = ReadU32(ciphertext.data() + 2 + kKeyIdSize);
  if (parsed.version == 0) return Error(Code::kInvalidCiphertext, "ciphertext names key version 0");
  std::memcpy(parsed.iv.data(), ciphertext.data() + kBoundHeaderSize, kIvSize);
  parsed.bound_header = ciphertext.first(kBoundHeaderSize);
  parsed.encrypted_and_tag = ciphertext.subspan(kHeaderSize);
  return parsed;
}

std::vector<uint8_t> BuildHeader(const KeyId& key_id, uint32_t version, const Iv& iv) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize);
  out.push_back(kMagic0);
  out.push_back(kMagic1);
  out.insert(out.end(), key_id.begin(), key_id.end());
  AppendU32(out, version);
  out.insert(out.end(), iv.begin(), iv.end());
  return out;
}

std::vector<uint8_t> BuildAad(std::span<const uint8_t> bound_header, std::string_view tenant,
                              const EncryptionContext& context) {
  std::vector<uint8_t> out(bound_header.begin(), bound_header.end());
  AppendBytes(out, tenant);
  AppendU32(out, static_cast<uint32_t>(context.size()));
  for (const auto& [key, value] : context) {
    AppendBytes(out, key);
    AppendBytes(out, value);
  }
  return out;
}

Status ValidateEncryptionContext(const EncryptionContext& context) {
  if (context.size() > 64)
    return Status(Code::kInvalidArgument, "encryption context has more than 64 entries");
  for (const auto& [key, value] : context) {
    if (key.empty() || key.size() > 256) {
      return Status(Code::kInvalidArgument, "encryption context keys must be 1-256 bytes");
    }
    if (value.size() > 4096) {
      return Status(Code::kInvalidArgument, "encryption context values must be at most 4096 bytes");
    }
  }
  return OkStatus();
}

}  // namespace kmsd
