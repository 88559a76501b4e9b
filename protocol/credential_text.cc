#include "protocol/credential_text.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace kmsd {
namespace {

constexpr size_t kIdHexDigits = 2 * kCredentialIdBytes;
constexpr size_t kSecretChars = (kCredentialSecretBytes * 4 + 2) / 3;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsBase64Url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

void AppendBase64Url(std::span<const uint8_t> bytes, uint8_t* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      *out++ = static_cast<uint8_t>(kAlphabet[(buffer >> bits) & 0x3f]);
    }
  }
  if (bits > 0) *out++ = static_cast<uint8_t>(kAlphabet[(buffer << (6 - bits)) & 0x3f]);
  OPENSSL_cleanse(&buffer, sizeof buffer);
}

}  // namespace

std::optional<std::string_view> CredentialIdOf(std::string_view text, std::string_view prefix) {
  if (text.size() != CredentialTextSize(prefix) || !text.starts_with(prefix)) return std::nullopt;
  const std::string_view id = text.substr(prefix.size(), kIdHexDigits);
  const std::string_view secret = text.substr(text.size() - kSecretChars);
  if (text[prefix.size() + kIdHexDigits] != '_') return std::nullopt;
  if (!std::all_of(id.begin(), id.end(), IsLowerHex)) return std::nullopt;
  if (!std::all_of(secret.begin(), secret.end(), IsBase64Url)) return std::nullopt;
  return id;
}

SecretBuffer CredentialText(std::string_view prefix, std::string_view id,
                            std::span<const uint8_t> secret) {
  SecretBuffer out(CredentialTextSize(prefix));
  uint8_t* at = out.RevealMutableData();
  at = std::copy(prefix.begin(), prefix.end(), at);
  at = std::copy(id.begin(), id.end(), at);
  *at++ = '_';
  AppendBase64Url(secret.first(std::min(secret.size(), kCredentialSecretBytes)), at);
  return out;
}

}  // namespace kmsd
