#include "client/esdk/kmsd_keyring.h"

#include <algorithm>

#include "client/typed_call.h"

namespace kmsd::esdk {

EncryptedDataKey KmsdKeyring::MakeEdk(std::string_view key_id, Bytes ciphertext) const {
  EncryptedDataKey edk;
  edk.provider_id = std::string(kKmsdProviderId);
  PutBytes(edk.provider_info, tenant_ + "/" + std::string(key_id));
  edk.ciphertext = std::move(ciphertext);
  return edk;
}

uint64_t KmsdKeyring::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

std::string KmsdKeyring::Shown() const {
  return "kmsd:" + tenant_ + (key_.empty() ? "" : "/" + key_);
}

Status KmsdKeyring::OnEncrypt(EncryptionMaterials& materials) {
  if (key_.empty()) {
    return Status(Code::kInvalidArgument, Shown() + " names no key to encrypt under");
  }
  std::lock_guard lock(mu_);
  ++calls_;
  if (materials.data_key.empty()) {
    ops::DataKeyRequest request{.key = key_,
                                .context = materials.context,
                                .key_spec = std::nullopt,
                                .number_of_bytes = materials.suite->key_bytes};
    ASSIGN_OR_RETURN(ops::DataKeyReply reply,
                     CallOp<ops::GenerateDataKey>(connection_, tenant_, std::move(request)));
    if (!reply.plaintext || reply.plaintext->size() != materials.suite->key_bytes) {
      return Status(Code::kInternal, "kmsd sent a data key of the wrong length");
    }
    materials.data_key = std::move(*reply.plaintext);
    materials.edks.push_back(MakeEdk(reply.key_id, std::move(reply.ciphertext)));
    return OkStatus();
  }
  ops::EncryptRequest request{
      .key = key_, .plaintext = materials.data_key.RevealSpan(), .context = materials.context};
  ASSIGN_OR_RETURN(ops::EncryptReply reply,
                   CallOp<ops::Encrypt>(connection_, tenant_, std::move(request)));
  materials.edks.push_back(MakeEdk(reply.key_id, std::move(reply.ciphertext)));
  return OkStatus();
}

Status KmsdKeyring::OnDecrypt(DecryptionMaterials& materials,
                              std::span<const EncryptedDataKey> edks) {
  RETURN_IF_ERROR(CheckNoDataKeyYet(materials));
  const std::string prefix = tenant_ + "/";
  std::optional<Status> last_error;
  std::vector<const EncryptedDataKey*> tried;
  for (const EncryptedDataKey& edk : edks) {
    const std::string_view info(reinterpret_cast<const char*>(edk.provider_info.data()),
                                edk.provider_info.size());
    if (edk.provider_id != kKmsdProviderId || !info.starts_with(prefix)) continue;
    // A copy of an EDK already refused is not sent again.
    if (std::any_of(tried.begin(), tried.end(), [&](const auto* other) { return *other == edk; })) {
      continue;
    }
    tried.push_back(&edk);
    std::lock_guard lock(mu_);
    ++calls_;
    ops::DecryptRequest request{
        .ciphertext = edk.ciphertext,
        .context = materials.context,
        .key = key_.empty() ? std::nullopt : std::optional<std::string_view>(key_)};
    auto reply = CallOp<ops::Decrypt>(connection_, tenant_, std::move(request));
    if (!reply.has_value()) {
      last_error = reply.error();
      if (ClassOf(reply.error().code()) == ErrorClass::kTransient) return reply.error();
      continue;
    }
    if (reply->plaintext.size() != materials.suite->key_bytes) {
      last_error = Status(Code::kInvalidCiphertext, "kmsd's data key has the wrong length");
      continue;
    }
    materials.data_key = std::move(reply->plaintext);
    return OkStatus();
  }
  if (last_error) {
    return Status(last_error->code(),
                  Shown() + " could not decrypt the message's data key: " + last_error->message());
  }
  return NoDataKeyFor(Shown());
}

}  // namespace kmsd::esdk
