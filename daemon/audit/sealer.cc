#include "daemon/audit/sealer.h"

#include <openssl/crypto.h>

#include "keystore/hierarchy.h"

namespace kmsd::audit {

Result<bool> Sealer::Check(std::string_view input, const Digest& mac) {
  ASSIGN_OR_RETURN(Digest expected, Mac(input));
  return CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0;
}

Bytes EncodeSealedHead(const SealedHead& head) {
  Bytes out;
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(head.covers >> shift));
  out.insert(out.end(), head.head.begin(), head.head.end());
  return out;
}

Result<SealedHead> DecodeSealedHead(std::span<const uint8_t> value) {
  SealedHead head;
  if (value.size() != 8 + head.head.size()) {
    return Error(Code::kInternal, "the token's " + std::string(kHeadObjectLabel) + " holds " +
                                      std::to_string(value.size()) + " bytes, not 40");
  }
  for (size_t i = 0; i < 8; ++i) head.covers = head.covers << 8 | value[i];
  std::copy(value.begin() + 8, value.end(), head.head.begin());
  return head;
}

Result<std::unique_ptr<TokenSealer>> TokenSealer::Open(pkcs11::Token& token) {
  ASSIGN_OR_RETURN(std::vector<pkcs11::ObjectHandle> keys,
                   token.FindTokenSecretKeysByLabel(kAuditLogKeyLabel));
  if (keys.size() != 1) {
    return Error(Code::kInternal, "the token holds " + std::to_string(keys.size()) + " keys '" +
                                      std::string(kAuditLogKeyLabel) + "', not one");
  }
  ASSIGN_OR_RETURN(std::vector<pkcs11::ObjectHandle> heads,
                   token.FindTokenDataObjects(kHeadObjectLabel));
  if (heads.empty()) {
    ASSIGN_OR_RETURN(pkcs11::ObjectHandle created,
                     token.CreateTokenDataObject(kHeadObjectLabel, EncodeSealedHead({})));
    heads.push_back(created);
  }
  // More than one: a replacement a crash interrupted. The newest covers most.
  size_t newest = 0;
  uint64_t newest_covers = 0;
  for (size_t i = 0; i < heads.size(); ++i) {
    ASSIGN_OR_RETURN(Bytes value, token.ReadDataObject(heads[i]));
    ASSIGN_OR_RETURN(SealedHead head, DecodeSealedHead(value));
    if (i == 0 || head.covers > newest_covers) {
      newest = i;
      newest_covers = head.covers;
    }
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    if (i != newest) RETURN_IF_ERROR(token.DestroyObject(heads[i]));
  }
  std::swap(heads[0], heads[newest]);
  return std::unique_ptr<TokenSealer>(new TokenSealer(token, keys.front(), heads.front()));
}

Result<Digest> TokenSealer::Mac(std::string_view input) {
  ASSIGN_OR_RETURN(
      Bytes mac,
      token_.HmacSha256(key_, {reinterpret_cast<const uint8_t*>(input.data()), input.size()}));
  Digest out;
  if (mac.size() != out.size()) return Error(Code::kInternal, "the token's HMAC is not 32 bytes");
  std::copy(mac.begin(), mac.end(), out.begin());
  return out;
}

Result<SealedHead> TokenSealer::ReadHead() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Bytes value, token_.ReadDataObject(head_));
  return DecodeSealedHead(value);
}

Status TokenSealer::WriteHead(const SealedHead& head) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle created,
                   token_.CreateTokenDataObject(kHeadObjectLabel, EncodeSealedHead(head)));
  const pkcs11::ObjectHandle old = std::exchange(head_, created);
  return token_.DestroyObject(old);
}

}  // namespace kmsd::audit
