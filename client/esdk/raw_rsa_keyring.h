// The raw RSA keyring (specification: framework/raw-rsa-keyring.md): data
// keys encrypted to an RSA public key, decrypted with its private key.
//
//   provider id = the key namespace, provider info = the key name,
//   ciphertext  = RSA encryption of the data key (OAEP with SHA-1, -256,
//                 -384 or -512 and MGF1 of the same hash, or PKCS#1 v1.5)
//
// Typical use: an escrow copy of every data key under an offline public key,
// so that data outlives the token; the private key alone reads it. PKCS#1
// v1.5 only decrypts (old messages): OnEncrypt refuses it. Keys come from PEM
// (SubjectPublicKeyInfo, PKCS#8 or PKCS#1 private keys), at least 2048 bits.
// Thread-safe.
#pragma once

#include <string>

#include "client/esdk/keyring.h"

namespace kmsd::esdk {

enum class RsaPadding : uint8_t { kOaepSha1, kOaepSha256, kOaepSha384, kOaepSha512, kPkcs1 };

// "oaep-sha1", ..., "oaep-sha512", "pkcs1".
std::optional<RsaPadding> RsaPaddingNamed(std::string_view name);

class RawRsaKeyring final : public Keyring {
 public:
  // `pem` holds a public key (encrypt only) or a private key (decrypt only:
  // the spec forbids deriving the public key from it).
  static Result<std::unique_ptr<RawRsaKeyring>> FromPem(std::string key_namespace,
                                                        std::string key_name, RsaPadding padding,
                                                        std::string_view pem);
  Status OnEncrypt(EncryptionMaterials& materials) override;
  Status OnDecrypt(DecryptionMaterials& materials, std::span<const EncryptedDataKey> edks) override;

 private:
  RawRsaKeyring(std::string key_namespace, std::string key_name, RsaPadding padding, Pkey key,
                bool is_private)
      : namespace_(std::move(key_namespace)),
        name_(std::move(key_name)),
        padding_(padding),
        key_(std::move(key)),
        is_private_(is_private) {}
  std::string Describe() const;

  const std::string namespace_;
  const std::string name_;
  const RsaPadding padding_;
  const Pkey key_;
  const bool is_private_;
};

}  // namespace kmsd::esdk
