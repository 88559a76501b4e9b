#include "client/esdk/raw_rsa_keyring.h"

#include <openssl/decoder.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstring>

#include "client/esdk/raw_aes_keyring.h"  // CheckKeyringNames

namespace kmsd::esdk {
namespace {

constexpr int kMinRsaBits = 2048;

const char* OaepDigest(RsaPadding padding) {
  switch (padding) {
    case RsaPadding::kOaepSha1:
      return "SHA1";
    case RsaPadding::kOaepSha256:
      return "SHA256";
    case RsaPadding::kOaepSha384:
      return "SHA384";
    case RsaPadding::kOaepSha512:
      return "SHA512";
    case RsaPadding::kPkcs1:
      break;
  }
  return nullptr;
}

struct PkeyContextFree {
  void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};
using PkeyContext = std::unique_ptr<EVP_PKEY_CTX, PkeyContextFree>;

bool SetPadding(EVP_PKEY_CTX* context, RsaPadding padding) {
  if (padding == RsaPadding::kPkcs1) {
    return EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1;
  }
  const char* digest = OaepDigest(padding);
  return EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_OAEP_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_oaep_md_name(context, digest, nullptr) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(context, digest, nullptr) == 1;
}

Pkey ReadPem(std::string_view pem, bool* is_private) {
  struct BioFree {
    void operator()(BIO* bio) const { BIO_free(bio); }
  };
  const auto bio = [&] {
    return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  };
  *is_private = pem.find("PRIVATE KEY-----") != std::string_view::npos;
  if (*is_private) {
    // A passphrase-protected key fails here rather than prompting on a terminal.
    const auto no_passphrase = [](char*, int, int, void*) { return -1; };
    return Pkey(PEM_read_bio_PrivateKey(bio().get(), nullptr, no_passphrase, nullptr));
  }
  // SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY").
  EVP_PKEY* key = nullptr;
  OSSL_DECODER_CTX* decoder = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", nullptr, "RSA",
                                                            EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
  if (decoder != nullptr) {
    auto in = bio();
    (void)OSSL_DECODER_from_bio(decoder, in.get());
    OSSL_DECODER_CTX_free(decoder);
  }
  return Pkey(key);
}

}  // namespace

std::optional<RsaPadding> RsaPaddingNamed(std::string_view name) {
  if (name == "oaep-sha1") return RsaPadding::kOaepSha1;
  if (name == "oaep-sha256") return RsaPadding::kOaepSha256;
  if (name == "oaep-sha384") return RsaPadding::kOaepSha384;
  if (name == "oaep-sha512") return RsaPadding::kOaepSha512;
  if (name == "pkcs1") return RsaPadding::kPkcs1;
  return std::nullopt;
}

Result<std::unique_ptr<RawRsaKeyring>> RawRsaKeyring::FromPem(std::string key_namespace,
                                                              std::string key_name,
                                                              RsaPadding padding,
                                                              std::string_view pem) {
  RETURN_IF_ERROR(CheckKeyringNames(key_namespace, key_name));
  bool is_private = false;
  Pkey key = ReadPem(pem, &is_private);
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return Error(Status(Code::kInvalidArgument,
                        "not a PEM RSA public or private key (or one protected by a passphrase)"));
  }
  if (EVP_PKEY_get_bits(key.get()) < kMinRsaBits) {
    return Error(Status(Code::kInvalidArgument, "an RSA key of fewer than 2048 bits"));
  }
  return std::unique_ptr<RawRsaKeyring>(new RawRsaKeyring(
      std::move(key_namespace), std::move(key_name), padding, std::move(key), is_private));
}

std::string RawRsaKeyring::Describe() const { return "raw-rsa:" + namespace_ + "/" + name_; }

Status RawRsaKeyring::OnEncrypt(EncryptionMaterials& materials) {
  if (is_private_) {
    return Status(Code::kInvalidArgument,
                  Describe() + " holds a private key: encrypting needs the public key");
  }
  if (padding_ == RsaPadding::kPkcs1) {
    return Status(Code::kInvalidArgument,
                  "PKCS#1 v1.5 padding only reads old messages; encrypt with OAEP");
  }
  if (materials.data_key.empty()) {
    ASSIGN_OR_RETURN(materials.data_key, RandomDataKey(materials.suite->key_bytes));
  }
  PkeyContext context(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  size_t size = 0;
  const auto key = materials.data_key.RevealSpan();
  if (!context || EVP_PKEY_encrypt_init(context.get()) != 1 ||
      !SetPadding(context.get(), padding_) ||
      EVP_PKEY_encrypt(context.get(), nullptr, &size, key.data(), key.size()) != 1) {
    return Status(Code::kInternal, "OpenSSL: RSA encryption set-up failed");
  }
  EncryptedDataKey edk;
  edk.provider_id = namespace_;
  PutBytes(edk.provider_info, name_);
  edk.ciphertext.resize(size);
  if (EVP_PKEY_encrypt(context.get(), edk.ciphertext.data(), &size, key.data(), key.size()) != 1) {
    return Status(Code::kInternal, "OpenSSL: RSA encryption failed");
  }
  edk.ciphertext.resize(size);
  materials.edks.push_back(std::move(edk));
  return OkStatus();
}

Status RawRsaKeyring::OnDecrypt(DecryptionMaterials& materials,
                                std::span<const EncryptedDataKey> edks) {
  RETURN_IF_ERROR(CheckNoDataKeyYet(materials));
  if (!is_private_) {
    return Status(Code::kInvalidArgument,
                  Describe() + " holds a public key: decrypting needs the private key");
  }
  for (const EncryptedDataKey& edk : edks) {
    if (edk.provider_id != namespace_ || edk.provider_info.size() != name_.size() ||
        std::memcmp(edk.provider_info.data(), name_.data(), name_.size()) != 0) {
      continue;
    }
    PkeyContext context(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    size_t size = 0;
    if (!context || EVP_PKEY_decrypt_init(context.get()) != 1 ||
        !SetPadding(context.get(), padding_) ||
        EVP_PKEY_decrypt(context.get(), nullptr, &size, edk.ciphertext.data(),
                         edk.ciphertext.size()) != 1) {
      continue;
    }
    SecretBuffer key(size);
    if (EVP_PKEY_decrypt(context.get(), key.RevealMutableData(), &size, edk.ciphertext.data(),
                         edk.ciphertext.size()) == 1 &&
        size == materials.suite->key_bytes) {
      key.Shrink(size);
      materials.data_key = std::move(key);
      return OkStatus();
    }
  }
  return NoDataKeyFor(Describe());
}

}  // namespace kmsd::esdk
