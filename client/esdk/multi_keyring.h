// The multi-keyring (specification: framework/multi-keyring.md): one
// generator and any number of children. Encrypt: the generator makes the
// data key and its EDK, each child adds its own EDK of the same key (so any
// one of them can decrypt). Without a generator the materials must already
// hold a data key. Decrypt: the generator, then the children in order, until
// one recovers the data key; when none does, the error says what each said
// (a transient failure, such as kmsd unavailable, is returned as itself so a
// caller can retry). Thread-safe when its keyrings are.
#pragma once

#include <memory>
#include <vector>

#include "client/esdk/keyring.h"

namespace kmsd::esdk {

class MultiKeyring final : public Keyring {
 public:
  MultiKeyring(std::unique_ptr<Keyring> generator, std::vector<std::unique_ptr<Keyring>> children)
      : generator_(std::move(generator)), children_(std::move(children)) {}
  Status OnEncrypt(EncryptionMaterials& materials) override;
  Status OnDecrypt(DecryptionMaterials& materials, std::span<const EncryptedDataKey> edks) override;

 private:
  std::unique_ptr<Keyring> generator_;  // may be null
  std::vector<std::unique_ptr<Keyring>> children_;
};

}  // namespace kmsd::esdk
