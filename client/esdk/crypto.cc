#include "client/esdk/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <array>

namespace kmsd::esdk {
namespace {

Status OpenSslFailure(std::string_view what) {
  return Status(Code::kInternal, "OpenSSL: " + std::string(what) + " failed");
}

// Fetched once: an explicit fetch per message costs microseconds.
EVP_KDF* Hkdf() {
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

const EVP_CIPHER* AesGcmCipher(size_t key_bytes) {
  static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* const aes192 = EVP_CIPHER_fetch(nullptr, "AES-192-GCM", nullptr);
  static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  switch (key_bytes) {
    case 16:
      return aes128;
    case 24:
      return aes192;
    case 32:
      return aes256;
  }
  return nullptr;
}

const char* DigestName(Kdf kdf) {
  switch (kdf) {
    case Kdf::kHkdfSha256:
      return "SHA256";
    case Kdf::kHkdfSha384:
      return "SHA384";
    case Kdf::kHkdfSha512:
      return "SHA512";
    case Kdf::kIdentity:
      break;
  }
  return nullptr;
}

const char* CurveName(Signature signature) {
  return signature == Signature::kEcdsaP256Sha256 ? "P-256" : "P-384";
}

const char* SignatureDigest(Signature signature) {
  return signature == Signature::kEcdsaP256Sha256 ? "SHA256" : "SHA384";
}

// One HKDF step: mode EXTRACT_ONLY (key = IKM, salt) or EXPAND_ONLY (key =
// PRK, info) into `out`.
bool HkdfStep(const char* digest, int mode, std::span<const uint8_t> key,
              std::span<const uint8_t> salt_or_info, uint8_t* out, size_t out_size) {
  EVP_KDF_CTX* context = EVP_KDF_CTX_new(Hkdf());
  if (context == nullptr) return false;
  const bool extract = mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.data()),
                                        key.size()),
      OSSL_PARAM_construct_octet_string(extract ? OSSL_KDF_PARAM_SALT : OSSL_KDF_PARAM_INFO,
                                        const_cast<uint8_t*>(salt_or_info.data()),
                                        salt_or_info.size()),
      OSSL_PARAM_construct_end()};
  const bool ok = EVP_KDF_derive(context, out, out_size, params) == 1;
  EVP_KDF_CTX_free(context);
  return ok;
}

struct MdFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

}  // namespace

Result<DerivedKeys> DeriveKeys(const Suite& suite, std::span<const uint8_t> plaintext_data_key,
                               std::span<const uint8_t> message_id) {
  if (plaintext_data_key.size() != suite.key_bytes) {
    return Error(Status(Code::kInvalidCiphertext, "a data key of the wrong length for the suite"));
  }
  DerivedKeys keys;
  if (suite.kdf == Kdf::kIdentity) {
    keys.data_key = SecretBuffer::CopyOf(plaintext_data_key);
    return keys;
  }
  const char* digest = DigestName(suite.kdf);
  uint8_t suite_id[2] = {static_cast<uint8_t>(suite.id >> 8), static_cast<uint8_t>(suite.id)};
  Bytes info(suite_id, suite_id + 2);
  if (suite.committing) {
    SecretBuffer prk(EVP_MAX_MD_SIZE);
    const size_t prk_size = 64;  // SHA-512
    if (!HkdfStep(digest, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, plaintext_data_key, message_id,
                  prk.RevealMutableData(), prk_size)) {
      return Error(OpenSslFailure("HKDF extract"));
    }
    prk.Shrink(prk_size);
    PutBytes(info, std::string_view("DERIVEKEY"));
    keys.data_key = SecretBuffer(suite.key_bytes);
    keys.commitment.resize(suite.suite_data_bytes);
    static constexpr std::string_view kCommitLabel = "COMMITKEY";
    const auto commit_info =
        std::span(reinterpret_cast<const uint8_t*>(kCommitLabel.data()), kCommitLabel.size());
    if (!HkdfStep(digest, EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.RevealSpan(), info,
                  keys.data_key.RevealMutableData(), suite.key_bytes) ||
        !HkdfStep(digest, EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.RevealSpan(), commit_info,
                  keys.commitment.data(), keys.commitment.size())) {
      return Error(OpenSslFailure("HKDF expand"));
    }
    return keys;
  }
  // Version 1: the salt is as many zeros as the hash is long, the info the
  // suite id then the message id.
  PutBytes(info, message_id);
  SecretBuffer prk(EVP_MAX_MD_SIZE);
  const size_t prk_size = suite.kdf == Kdf::kHkdfSha256 ? 32 : 48;
  const Bytes zero_salt(prk_size, 0);
  keys.data_key = SecretBuffer(suite.key_bytes);
  if (!HkdfStep(digest, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, plaintext_data_key, zero_salt,
                prk.RevealMutableData(), prk_size) ||
      !HkdfStep(digest, EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.RevealSpan().first(prk_size), info,
                keys.data_key.RevealMutableData(), suite.key_bytes)) {
    return Error(OpenSslFailure("HKDF"));
  }
  return keys;
}

bool CommitmentMatches(std::span<const uint8_t> expected, std::span<const uint8_t> actual) {
  return expected.size() == actual.size() &&
         CRYPTO_memcmp(expected.data(), actual.data(), expected.size()) == 0;
}

Result<AesGcm> AesGcm::Create(std::span<const uint8_t> key) {
  const EVP_CIPHER* cipher = AesGcmCipher(key.size());
  if (cipher == nullptr) return Error(Status(Code::kInvalidArgument, "an AES key of bad length"));
  AesGcm out(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_new());
  if (!out.encrypt_ || !out.decrypt_ ||
      EVP_EncryptInit_ex2(out.encrypt_.get(), cipher, key.data(), nullptr, nullptr) != 1 ||
      EVP_DecryptInit_ex2(out.decrypt_.get(), cipher, key.data(), nullptr, nullptr) != 1) {
    return Error(OpenSslFailure("AES-GCM set-up"));
  }
  return out;
}

Status AesGcm::Seal(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
                    std::span<const uint8_t> plaintext, uint8_t* out, uint8_t* tag) {
  EVP_CIPHER_CTX* context = encrypt_.get();
  int length = 0;
  if (EVP_EncryptInit_ex2(context, nullptr, nullptr, iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(context, nullptr, &length, aad.data(),
                                         static_cast<int>(aad.size())) != 1)) {
    return OpenSslFailure("AES-GCM");
  }
  // EVP takes int lengths: frames are at most 64 MiB, but go in steps anyway.
  size_t done = 0;
  while (done < plaintext.size()) {
    const int step = static_cast<int>(std::min<size_t>(plaintext.size() - done, 1u << 30));
    if (EVP_EncryptUpdate(context, out + done, &length, plaintext.data() + done, step) != 1) {
      return OpenSslFailure("AES-GCM");
    }
    done += static_cast<size_t>(step);
  }
  if (EVP_EncryptFinal_ex(context, out + done, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag) != 1) {
    return OpenSslFailure("AES-GCM");
  }
  return OkStatus();
}

bool AesGcm::Open(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
                  std::span<const uint8_t> ciphertext, std::span<const uint8_t> tag, uint8_t* out) {
  EVP_CIPHER_CTX* context = decrypt_.get();
  int length = 0;
  if (tag.size() != kTagBytes ||
      EVP_DecryptInit_ex2(context, nullptr, nullptr, iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(context, nullptr, &length, aad.data(),
                                         static_cast<int>(aad.size())) != 1)) {
    return false;
  }
  size_t done = 0;
  while (done < ciphertext.size()) {
    const int step = static_cast<int>(std::min<size_t>(ciphertext.size() - done, 1u << 30));
    if (EVP_DecryptUpdate(context, out + done, &length, ciphertext.data() + done, step) != 1) {
      return false;
    }
    done += static_cast<size_t>(step);
  }
  return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, kTagBytes,
                             const_cast<uint8_t*>(tag.data())) == 1 &&
         EVP_DecryptFinal_ex(context, out + done, &length) == 1;
}

Result<std::array<uint8_t, kTagBytes>> HeaderTag(AesGcm& cipher, std::span<const uint8_t> body) {
  static constexpr std::array<uint8_t, kIvBytes> kZeroIv{};
  std::array<uint8_t, kTagBytes> tag;
  RETURN_IF_ERROR(cipher.Seal(kZeroIv, body, {}, nullptr, tag.data()));
  return tag;
}

Result<Signer> Signer::Generate(const Suite& suite) {
  Signer signer;
  signer.key_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", CurveName(suite.signature)));
  if (!signer.key_ ||
      EVP_PKEY_set_utf8_string_param(signer.key_.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                     "compressed") != 1) {
    return Error(OpenSslFailure("ECDSA key generation"));
  }
  // The public key parameter follows the conversion format (the encoded
  // public key, OpenSSL 3.0, is always uncompressed).
  uint8_t point[1 + 66];
  size_t point_size = 0;
  if (EVP_PKEY_get_octet_string_param(signer.key_.get(), OSSL_PKEY_PARAM_PUB_KEY, point,
                                      sizeof point, &point_size) != 1) {
    return Error(OpenSslFailure("ECDSA public key"));
  }
  signer.public_key_text_ = Base64Encode({point, point_size});
  signer.digest_name_ = SignatureDigest(suite.signature);
  RETURN_IF_ERROR(signer.StartDigest());
  return signer;
}

Status Signer::StartDigest() {
  digest_.reset(EVP_MD_CTX_new());
  if (!digest_ || EVP_DigestSignInit_ex(digest_.get(), nullptr, digest_name_, nullptr, nullptr,
                                        key_.get(), nullptr) != 1) {
    return OpenSslFailure("ECDSA signing set-up");
  }
  return OkStatus();
}

Result<Signer> Signer::Fork() const {
  Signer signer;
  if (EVP_PKEY_up_ref(key_.get()) != 1) return Error(OpenSslFailure("ECDSA key reference"));
  signer.key_.reset(key_.get());
  signer.public_key_text_ = public_key_text_;
  signer.digest_name_ = digest_name_;
  RETURN_IF_ERROR(signer.StartDigest());
  return signer;
}

Status Signer::Update(std::span<const uint8_t> bytes) {
  if (EVP_DigestSignUpdate(digest_.get(), bytes.data(), bytes.size()) != 1) {
    return OpenSslFailure("ECDSA digest");
  }
  return OkStatus();
}

Result<Bytes> Signer::Finish() {
  size_t size = 0;
  if (EVP_DigestSignFinal(digest_.get(), nullptr, &size) != 1) {
    return Error(OpenSslFailure("ECDSA signature"));
  }
  Bytes signature(size);
  if (EVP_DigestSignFinal(digest_.get(), signature.data(), &size) != 1) {
    return Error(OpenSslFailure("ECDSA signature"));
  }
  signature.resize(size);
  return signature;
}

Result<Verifier> Verifier::Create(const Suite& suite, std::string_view public_key_text) {
  const std::optional<Bytes> point = Base64Decode(public_key_text);
  const auto bad_key = [] {
    return Error(Status(Code::kInvalidCiphertext,
                        "the message's verification key (aws-crypto-public-key) is not a "
                        "point of the suite's curve"));
  };
  if (!point || point->empty()) return bad_key();
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                       const_cast<char*>(CurveName(suite.signature)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<uint8_t*>(point->data()), point->size()),
      OSSL_PARAM_construct_end()};
  const bool made = context != nullptr && EVP_PKEY_fromdata_init(context) == 1 &&
                    EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(context);
  if (!made) return bad_key();
  Verifier verifier;
  verifier.key_.reset(key);
  verifier.digest_.reset(EVP_MD_CTX_new());
  if (!verifier.digest_ ||
      EVP_DigestVerifyInit_ex(verifier.digest_.get(), nullptr, SignatureDigest(suite.signature),
                              nullptr, nullptr, verifier.key_.get(), nullptr) != 1) {
    return Error(OpenSslFailure("ECDSA verification set-up"));
  }
  return verifier;
}

Status Verifier::Update(std::span<const uint8_t> bytes) {
  if (EVP_DigestVerifyUpdate(digest_.get(), bytes.data(), bytes.size()) != 1) {
    return OpenSslFailure("ECDSA digest");
  }
  return OkStatus();
}

Status Verifier::Finish(std::span<const uint8_t> signature) {
  if (EVP_DigestVerifyFinal(digest_.get(), signature.data(), signature.size()) != 1) {
    return Status(Code::kInvalidCiphertext, "the message's signature does not verify");
  }
  return OkStatus();
}

std::string Base64Encode(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                      static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(written));
  return out;
}

std::optional<Bytes> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=' && i + 2 >= text.size()) {
      ++padding;
    } else if (!alphabet || padding > 0) {
      return std::nullopt;
    }
  }
  Bytes out(text.size() / 4 * 3);
  if (EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size())) < 0) {
    return std::nullopt;
  }
  out.resize(out.size() - padding);
  return out;
}

}  // namespace kmsd::esdk
