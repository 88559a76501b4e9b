// Keyrings and materials (specification: framework/keyring-interface.md,
// framework/cmm-interface.md, framework/default-cmm.md).
//
// A keyring makes or recovers a message's plaintext data key: on encrypt it
// generates the data key when the materials have none (a generator) and adds
// its encrypted data key (EDK); on decrypt it sets the data key from the
// first EDK it can decrypt, or fails saying why. A materials manager stands
// between a message and its keyring: the default one adds the signing key
// of a signed suite (its public half in the context, so every EDK's AAD
// covers it), the caching one (cache.h) reuses data keys.
//
// Keyrings are called from one message at a time unless they say otherwise.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/esdk/crypto.h"
#include "client/esdk/header.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd::esdk {

struct EncryptionMaterials {
  const Suite* suite = nullptr;
  EncryptionContext context;
  SecretBuffer data_key;  // empty until a generator sets it
  std::vector<EncryptedDataKey> edks;
  std::optional<Signer> signer;  // signed suites
};

struct DecryptionMaterials {
  const Suite* suite = nullptr;
  EncryptionContext context;
  SecretBuffer data_key;  // empty until a keyring recovers it
};

class Keyring {
 public:
  virtual ~Keyring() = default;
  virtual Status OnEncrypt(EncryptionMaterials& materials) = 0;
  virtual Status OnDecrypt(DecryptionMaterials& materials,
                           std::span<const EncryptedDataKey> edks) = 0;
};

class MaterialsManager {
 public:
  virtual ~MaterialsManager() = default;
  // `plaintext_bytes` when known (a cache counts bytes per data key).
  virtual Result<EncryptionMaterials> GetEncryptionMaterials(
      const Suite& suite, const EncryptionContext& context,
      std::optional<uint64_t> plaintext_bytes) = 0;
  virtual Result<DecryptionMaterials> DecryptMaterials(const Suite& suite,
                                                       const EncryptionContext& context,
                                                       std::span<const EncryptedDataKey> edks) = 0;
};

// The default materials manager over one keyring.
class KeyringMaterials final : public MaterialsManager {
 public:
  explicit KeyringMaterials(Keyring& keyring) : keyring_(keyring) {}
  Result<EncryptionMaterials> GetEncryptionMaterials(
      const Suite& suite, const EncryptionContext& context,
      std::optional<uint64_t> plaintext_bytes) override;
  Result<DecryptionMaterials> DecryptMaterials(const Suite& suite, const EncryptionContext& context,
                                               std::span<const EncryptedDataKey> edks) override;

 private:
  Keyring& keyring_;
};

// A fresh random data key of `bytes` bytes.
Result<SecretBuffer> RandomDataKey(size_t bytes);

// What a keyring returns when none of the EDKs is one of its own.
Status NoDataKeyFor(std::string_view keyring);
// OnDecrypt refuses materials that already hold a data key.
Status CheckNoDataKeyYet(const DecryptionMaterials& materials);

}  // namespace kmsd::esdk
