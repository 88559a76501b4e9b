#include "client/esdk/raw_aes_keyring.h"

#include <cstring>

#include "client/esdk/random_pool.h"
#include "protocol/utf8.h"

namespace kmsd::esdk {
namespace {

constexpr uint32_t kTagBits = kTagBytes * 8;

}  // namespace

Status CheckKeyringNames(std::string_view key_namespace, std::string_view key_name) {
  if (key_namespace.empty() || key_name.empty() || key_namespace.size() > 0xFFFF ||
      key_name.size() > 0xFF00 || !IsUtf8(key_namespace) || !IsUtf8(key_name)) {
    return Status(Code::kInvalidArgument,
                  "a keyring needs a namespace and a name (UTF-8, not empty)");
  }
  if (key_namespace == "aws-kms") {
    return Status(Code::kInvalidArgument,
                  "the key namespace aws-kms is reserved for AWS KMS keyrings");
  }
  return OkStatus();
}

Result<std::unique_ptr<RawAesKeyring>> RawAesKeyring::Create(std::string key_namespace,
                                                             std::string key_name,
                                                             SecretBuffer wrapping_key) {
  RETURN_IF_ERROR(CheckKeyringNames(key_namespace, key_name));
  const size_t size = wrapping_key.size();
  if (size != 16 && size != 24 && size != 32) {
    return Error(
        Status(Code::kInvalidArgument,
               "a raw AES wrapping key has 16, 24 or 32 bytes, not " + std::to_string(size)));
  }
  return std::unique_ptr<RawAesKeyring>(
      new RawAesKeyring(std::move(key_namespace), std::move(key_name), std::move(wrapping_key)));
}

Status RawAesKeyring::OnEncrypt(EncryptionMaterials& materials) {
  if (materials.data_key.empty()) {
    ASSIGN_OR_RETURN(materials.data_key, RandomDataKey(materials.suite->key_bytes));
  }
  ASSIGN_OR_RETURN(const Bytes aad, SerializeContext(materials.context));
  uint8_t iv[kIvBytes];
  RETURN_IF_ERROR(FillUniqueRandom(iv));
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(wrapping_key_.RevealSpan(), AesGcm::Use::kSeal));
  EncryptedDataKey edk;
  edk.provider_id = namespace_;
  PutBytes(edk.provider_info, name_);
  PutU32(edk.provider_info, kTagBits);
  PutU32(edk.provider_info, kIvBytes);
  PutBytes(edk.provider_info, std::span<const uint8_t>(iv, sizeof iv));
  const size_t key_size = materials.data_key.size();
  edk.ciphertext.resize(key_size + kTagBytes);
  RETURN_IF_ERROR(cipher.Seal(iv, aad, materials.data_key.RevealSpan(), edk.ciphertext.data(),
                              edk.ciphertext.data() + key_size));
  materials.edks.push_back(std::move(edk));
  return OkStatus();
}

std::optional<std::span<const uint8_t>> RawAesKeyring::IvOfInfo(
    std::span<const uint8_t> info) const {
  if (info.size() != name_.size() + 8 + kIvBytes ||
      std::memcmp(info.data(), name_.data(), name_.size()) != 0) {
    return std::nullopt;
  }
  ByteReader in(info.subspan(name_.size()));
  if (in.U32() != kTagBits || in.U32() != kIvBytes) return std::nullopt;
  return in.Take(kIvBytes);
}

Status RawAesKeyring::OnDecrypt(DecryptionMaterials& materials,
                                std::span<const EncryptedDataKey> edks) {
  RETURN_IF_ERROR(CheckNoDataKeyYet(materials));
  ASSIGN_OR_RETURN(const Bytes aad, SerializeContext(materials.context));
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(wrapping_key_.RevealSpan(), AesGcm::Use::kOpen));
  const size_t key_size = materials.suite->key_bytes;
  for (const EncryptedDataKey& edk : edks) {
    if (edk.provider_id != namespace_ || edk.ciphertext.size() != key_size + kTagBytes) continue;
    const auto iv = IvOfInfo(edk.provider_info);
    if (!iv) continue;
    SecretBuffer key(key_size);
    const std::span<const uint8_t> wrapped(edk.ciphertext.data(), key_size);
    const std::span<const uint8_t> tag(edk.ciphertext.data() + key_size, kTagBytes);
    if (cipher.Open(*iv, aad, wrapped, tag, key.RevealMutableData())) {
      materials.data_key = std::move(key);
      return OkStatus();
    }
  }
  return NoDataKeyFor("raw-aes:" + namespace_ + "/" + name_);
}

}  // namespace kmsd::esdk
