#include "client/esdk/multi_keyring.h"

namespace kmsd::esdk {

Status MultiKeyring::OnEncrypt(EncryptionMaterials& materials) {
  if (generator_) {
    if (!materials.data_key.empty()) {
      return Status(Code::kInvalidArgument, "a multi-keyring's generator got a data key");
    }
    RETURN_IF_ERROR(generator_->OnEncrypt(materials));
  } else if (materials.data_key.empty()) {
    return Status(Code::kInvalidArgument, "a multi-keyring without a generator got no data key");
  }
  for (const auto& child : children_) RETURN_IF_ERROR(child->OnEncrypt(materials));
  return OkStatus();
}

Status MultiKeyring::OnDecrypt(DecryptionMaterials& materials,
                               std::span<const EncryptedDataKey> edks) {
  std::string reasons;
  std::optional<Status> transient;
  const auto attempt = [&](Keyring& keyring) {
    const Status status = keyring.OnDecrypt(materials, edks);
    if (status.ok()) return true;
    if (!transient && ClassOf(status.code()) == ErrorClass::kTransient) transient = status;
    if (!reasons.empty()) reasons += "; ";
    reasons += status.message();
    return false;
  };
  if (generator_ && attempt(*generator_)) return OkStatus();
  for (const auto& child : children_) {
    if (attempt(*child)) return OkStatus();
  }
  if (transient) return *transient;
  return Status(Code::kInvalidCiphertext, "no keyring could decrypt a data key: " + reasons);
}

}  // namespace kmsd::esdk
