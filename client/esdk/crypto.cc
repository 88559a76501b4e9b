#include "client/esdk/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include <array>
#include <map>

#include "protocol/base64.h"

namespace kmsd::esdk {
namespace {

// EVP takes int lengths: frames are at most 64 MiB, but go in steps anyway.
// The context knows whether it seals or opens.
bool UpdateInSteps(EVP_CIPHER_CTX* context, std::span<const uint8_t> in, uint8_t* out) {
  int length = 0;
  for (size_t done = 0; done < in.size();) {
    const int step = static_cast<int>(std::min<size_t>(in.size() - done, 1u << 30));
    if (EVP_CipherUpdate(context, out + done, &length, in.data() + done, step) != 1) return false;
    done += static_cast<size_t>(step);
  }
  return true;
}

Status OpenSslFailure(std::string_view what) {
  return Status(Code::kInternal, "OpenSSL: " + std::string(what) + " failed");
}

// HMAC with a context kept per thread and digest: OpenSSL's HKDF through
// EVP_KDF looked its algorithms up by name on every call (6 us of a 10 us
// cached message); an HMAC context re-keyed in place costs a fraction.
struct MacContextFree {
  void operator()(EVP_MAC_CTX* context) const { EVP_MAC_CTX_free(context); }
};

EVP_MAC_CTX* HmacContext(const char* digest) {
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local std::map<std::string_view, std::unique_ptr<EVP_MAC_CTX, MacContextFree>> contexts;
  auto& context = contexts[digest];
  if (!context) {
    context.reset(EVP_MAC_CTX_new(hmac));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
        OSSL_PARAM_construct_end()};
    if (!context || EVP_MAC_CTX_set_params(context.get(), params) != 1) context.reset();
  }
  return context.get();
}

// HMAC(key, first || second) into `out` (the digest's size).
bool Hmac(const char* digest, std::span<const uint8_t> key, std::span<const uint8_t> first,
          std::span<const uint8_t> second, uint8_t* out) {
  EVP_MAC_CTX* context = HmacContext(digest);
  size_t size = 0;
  return context != nullptr && EVP_MAC_init(context, key.data(), key.size(), nullptr) == 1 &&
         EVP_MAC_update(context, first.data(), first.size()) == 1 &&
         EVP_MAC_update(context, second.data(), second.size()) == 1 &&
         EVP_MAC_final(context, out, &size, EVP_MAX_MD_SIZE) == 1;
}

// HKDF (RFC 5869) output of at most one hash length: T(1) = HMAC(PRK, info || 0x01).
bool HkdfExpandOne(const char* digest, std::span<const uint8_t> prk, std::span<const uint8_t> info,
                   uint8_t* out, size_t out_size) {
  static constexpr uint8_t kCounter[] = {1};
  uint8_t block[EVP_MAX_MD_SIZE];
  const bool ok = Hmac(digest, prk, info, kCounter, block);
  std::copy(block, block + out_size, out);
  OPENSSL_cleanse(block, sizeof block);
  return ok;
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

// The HKDF's hash: its name for EVP and its output length.
struct KdfDigest {
  const char* name = nullptr;
  size_t bytes = 0;
};

KdfDigest DigestOf(Kdf kdf) {
  switch (kdf) {
    case Kdf::kHkdfSha256:
      return {"SHA256", 32};
    case Kdf::kHkdfSha384:
      return {"SHA384", 48};
    case Kdf::kHkdfSha512:
      return {"SHA512", 64};
    case Kdf::kIdentity:
      break;
  }
  return {};
}

const char* CurveName(Signature signature) {
  return signature == Signature::kEcdsaP256Sha256 ? "P-256" : "P-384";
}

const char* SignatureDigest(Signature signature) {
  return signature == Signature::kEcdsaP256Sha256 ? "SHA256" : "SHA384";
}

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
  const auto [digest, hash_size] = DigestOf(suite.kdf);
  // Extract: PRK = HMAC(salt, data key). Committing suites salt with the
  // message id; version 1 with as many zeros as the hash is long.
  static constexpr uint8_t kZeros[EVP_MAX_MD_SIZE] = {};
  const std::span<const uint8_t> salt =
      suite.committing ? message_id : std::span<const uint8_t>(kZeros, hash_size);
  SecretBuffer prk(hash_size);
  if (!Hmac(digest, salt, plaintext_data_key, {}, prk.RevealMutableData())) {
    return Error(OpenSslFailure("HKDF extract"));
  }
  // Expand: info = suite id || "DERIVEKEY" (committing) or suite id ||
  // message id (version 1); the commitment key's info is "COMMITKEY".
  uint8_t info[2 + 32];
  info[0] = static_cast<uint8_t>(suite.id >> 8);
  info[1] = static_cast<uint8_t>(suite.id);
  static constexpr std::string_view kDeriveLabel = "DERIVEKEY", kCommitLabel = "COMMITKEY";
  const auto label = [](std::string_view text) {
    return std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  };
  const std::span<const uint8_t> tail = suite.committing ? label(kDeriveLabel) : message_id;
  if (tail.size() > sizeof info - 2) return Error(OpenSslFailure("HKDF info"));
  std::copy(tail.begin(), tail.end(), info + 2);
  keys.data_key = SecretBuffer(suite.key_bytes);
  if (!HkdfExpandOne(digest, prk.RevealSpan(), {info, 2 + tail.size()},
                     keys.data_key.RevealMutableData(), suite.key_bytes)) {
    return Error(OpenSslFailure("HKDF expand"));
  }
  if (suite.committing) {
    keys.commitment.resize(suite.suite_data_bytes);
    if (!HkdfExpandOne(digest, prk.RevealSpan(), label(kCommitLabel), keys.commitment.data(),
                       keys.commitment.size())) {
      return Error(OpenSslFailure("HKDF expand"));
    }
  }
  return keys;
}

bool CommitmentMatches(std::span<const uint8_t> expected, std::span<const uint8_t> actual) {
  return expected.size() == actual.size() &&
         CRYPTO_memcmp(expected.data(), actual.data(), expected.size()) == 0;
}

Result<AesGcm> AesGcm::Create(std::span<const uint8_t> key, Use use) {
  const EVP_CIPHER* cipher = AesGcmCipher(key.size());
  if (cipher == nullptr) return Error(Status(Code::kInvalidArgument, "an AES key of bad length"));
  const bool seal = use != Use::kOpen, open = use != Use::kSeal;
  AesGcm out(seal ? EVP_CIPHER_CTX_new() : nullptr, open ? EVP_CIPHER_CTX_new() : nullptr);
  if ((seal && (!out.encrypt_ || EVP_EncryptInit_ex2(out.encrypt_.get(), cipher, key.data(),
                                                     nullptr, nullptr) != 1)) ||
      (open && (!out.decrypt_ || EVP_DecryptInit_ex2(out.decrypt_.get(), cipher, key.data(),
                                                     nullptr, nullptr) != 1))) {
    return Error(OpenSslFailure("AES-GCM set-up"));
  }
  return out;
}

Status AesGcm::Seal(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
                    std::span<const uint8_t> plaintext, uint8_t* out, uint8_t* tag) {
  EVP_CIPHER_CTX* context = encrypt_.get();
  if (context == nullptr) return OpenSslFailure("AES-GCM keyed for opening only");
  int length = 0;
  if (EVP_EncryptInit_ex2(context, nullptr, nullptr, iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(context, nullptr, &length, aad.data(),
                                         static_cast<int>(aad.size())) != 1)) {
    return OpenSslFailure("AES-GCM");
  }
  if (!UpdateInSteps(context, plaintext, out) ||
      EVP_EncryptFinal_ex(context, out + plaintext.size(), &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag) != 1) {
    return OpenSslFailure("AES-GCM");
  }
  return OkStatus();
}

bool AesGcm::BeginOpen(std::span<const uint8_t> iv, std::span<const uint8_t> aad) {
  EVP_CIPHER_CTX* context = decrypt_.get();
  int length = 0;
  return context != nullptr &&
         EVP_DecryptInit_ex2(context, nullptr, nullptr, iv.data(), nullptr) == 1 &&
         (aad.empty() || EVP_DecryptUpdate(context, nullptr, &length, aad.data(),
                                           static_cast<int>(aad.size())) == 1);
}

bool AesGcm::UpdateOpen(std::span<const uint8_t> ciphertext, uint8_t* out) {
  return UpdateInSteps(decrypt_.get(), ciphertext, out);
}

bool AesGcm::FinishOpen(std::span<const uint8_t> tag) {
  uint8_t unused[16];
  int length = 0;
  return tag.size() == kTagBytes &&
         EVP_CIPHER_CTX_ctrl(decrypt_.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes,
                             const_cast<uint8_t*>(tag.data())) == 1 &&
         EVP_DecryptFinal_ex(decrypt_.get(), unused, &length) == 1;
}

bool AesGcm::Open(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
                  std::span<const uint8_t> ciphertext, std::span<const uint8_t> tag, uint8_t* out) {
  return BeginOpen(iv, aad) && UpdateOpen(ciphertext, out) && FinishOpen(tag);
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

}  // namespace kmsd::esdk
