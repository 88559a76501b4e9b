// The raw AES keyring (specification: framework/raw-aes-keyring.md): data
// keys wrapped with AES-GCM under a local 128, 192 or 256-bit key, the
// serialized encryption context as AAD. Byte-compatible with the SDKs':
//
//   provider id   = the key namespace
//   provider info = key name | tag length in bits (4) = 128 | IV length (4) = 12 | IV (12)
//   ciphertext    = wrapped data key | tag (16)
//
// Thread-safe (each call makes its own cipher context).
#pragma once

#include <string>

#include "client/esdk/keyring.h"

namespace kmsd::esdk {

class RawAesKeyring final : public Keyring {
 public:
  // INVALID_ARGUMENT for a key not of 16, 24 or 32 bytes, an empty name or
  // the namespace "aws-kms" (reserved for AWS KMS keyrings).
  static Result<std::unique_ptr<RawAesKeyring>> Create(std::string key_namespace,
                                                       std::string key_name,
                                                       SecretBuffer wrapping_key);
  Status OnEncrypt(EncryptionMaterials& materials) override;
  Status OnDecrypt(DecryptionMaterials& materials, std::span<const EncryptedDataKey> edks) override;

 private:
  RawAesKeyring(std::string key_namespace, std::string key_name, SecretBuffer wrapping_key)
      : namespace_(std::move(key_namespace)),
        name_(std::move(key_name)),
        wrapping_key_(std::move(wrapping_key)) {}
  // The IV when `info` is this keyring's provider info, else nullopt.
  std::optional<std::span<const uint8_t>> IvOfInfo(std::span<const uint8_t> info) const;

  const std::string namespace_;
  const std::string name_;
  const SecretBuffer wrapping_key_;
};

// Checks a keyring's namespace and name: not empty, UTF-8, under 64 KiB, and
// the namespace not "aws-kms".
Status CheckKeyringNames(std::string_view key_namespace, std::string_view key_name);

}  // namespace kmsd::esdk
