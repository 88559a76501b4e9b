#include "client/esdk/keyring.h"

#include <openssl/rand.h>

namespace kmsd::esdk {

Result<SecretBuffer> RandomDataKey(size_t bytes) {
  SecretBuffer key(bytes);
  if (RAND_priv_bytes(key.RevealMutableData(), static_cast<int>(bytes)) != 1) {
    return Error(Status(Code::kInternal, "OpenSSL: no random bytes"));
  }
  return key;
}

Status NoDataKeyFor(std::string_view keyring) {
  return Status(Code::kInvalidCiphertext,
                "no encrypted data key of the message is for " + std::string(keyring));
}

Status CheckNoDataKeyYet(const DecryptionMaterials& materials) {
  if (materials.data_key.empty()) return OkStatus();
  return Status(Code::kInvalidArgument, "the decryption materials already hold a data key");
}

Result<EncryptionMaterials> KeyringMaterials::GetEncryptionMaterials(
    const Suite& suite, const EncryptionContext& context, std::optional<uint64_t>) {
  for (const auto& [key, value] : context) {
    if (key.starts_with(kReservedContextPrefix)) {
      return Error(Status(Code::kInvalidArgument, "encryption context keys starting with " +
                                                      std::string(kReservedContextPrefix) +
                                                      " are reserved ('" + key + "')"));
    }
  }
  EncryptionMaterials materials{
      .suite = &suite, .context = context, .data_key = {}, .edks = {}, .signer = std::nullopt};
  if (suite.signature != Signature::kNone) {
    ASSIGN_OR_RETURN(Signer signer, Signer::Generate(suite));
    materials.context[std::string(kPublicKeyContextKey)] = signer.public_key_text();
    materials.signer = std::move(signer);
  }
  RETURN_IF_ERROR(keyring_.OnEncrypt(materials));
  if (materials.data_key.size() != suite.key_bytes || materials.edks.empty()) {
    return Error(Status(Code::kInternal, "the keyring made no data key of the suite's length"));
  }
  return materials;
}

Result<DecryptionMaterials> KeyringMaterials::DecryptMaterials(
    const Suite& suite, const EncryptionContext& context, std::span<const EncryptedDataKey> edks) {
  const bool has_public_key = context.contains(std::string(kPublicKeyContextKey));
  if ((suite.signature != Signature::kNone) != has_public_key) {
    return Error(Status(Code::kInvalidCiphertext,
                        has_public_key ? "an unsigned message carries a verification key"
                                       : "a signed message carries no verification key"));
  }
  DecryptionMaterials materials{.suite = &suite, .context = context, .data_key = {}};
  RETURN_IF_ERROR(keyring_.OnDecrypt(materials, edks));
  if (materials.data_key.size() != suite.key_bytes) {
    return Error(Status(Code::kInvalidCiphertext, "a data key of the wrong length"));
  }
  return materials;
}

}  // namespace kmsd::esdk
