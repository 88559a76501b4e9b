#include "keystore/internal/crypto.h"

#include <openssl/rand.h>

#include <vector>

namespace kmsd::keystore_internal {

Result<Bytes> Seal(pkcs11::Token& token, const pkcs11::KeyRef& version_key, const KeyId& key_id,
                   uint32_t version, std::string_view tenant, const EncryptionContext& context,
                   std::span<const uint8_t> plaintext) {
  // The IV comes from OpenSSL's DRBG (NIST SP 800-90A), not the token: a
  // second token call per encryption halved throughput under concurrency.
  Iv iv;
  if (RAND_bytes(iv.data(), static_cast<int>(iv.size())) != 1) {
    return Error(Code::kInternal, "no randomness for an IV");
  }
  Bytes ciphertext = BuildHeader(key_id, version, iv);
  const std::vector<uint8_t> aad =
      BuildAad(std::span(ciphertext).first(kBoundHeaderSize), tenant, context);
  ASSIGN_OR_RETURN(Bytes sealed, token.EncryptGcm(version_key, iv, aad, plaintext));
  ciphertext.insert(ciphertext.end(), sealed.begin(), sealed.end());
  return ciphertext;
}

Result<SecretBuffer> Open(pkcs11::Token& token, const pkcs11::KeyRef& version_key,
                          const ParsedCiphertext& parsed, std::string_view tenant,
                          const EncryptionContext& context) {
  const std::vector<uint8_t> aad = BuildAad(parsed.bound_header, tenant, context);
  return token.DecryptGcm(version_key, parsed.iv, aad, parsed.encrypted_and_tag);
}

}  // namespace kmsd::keystore_internal
