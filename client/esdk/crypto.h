// The cryptography of an ESDK message: the derived data key and commitment
// key (framework/transitive-requirements.md), AES-GCM for the header tag and
// the frames, and the ECDSA signature of signed suites. OpenSSL 3 does the
// work; algorithms are fetched once per process. Keys are SecretBuffers.
// A FrameCipher or a Signer is used by one thread at a time.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "client/esdk/bytes.h"
#include "client/esdk/suite.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd::esdk {

struct DerivedKeys {
  SecretBuffer data_key;  // the AES key of the header tag and the frames
  Bytes commitment;       // committing suites: the 32-byte commitment key
};
// From the plaintext data key (the suite's length) and the message id.
Result<DerivedKeys> DeriveKeys(const Suite& suite, std::span<const uint8_t> plaintext_data_key,
                               std::span<const uint8_t> message_id);

// Constant-time comparison of commitment keys.
bool CommitmentMatches(std::span<const uint8_t> expected, std::span<const uint8_t> actual);

// AES-GCM with one key: seals and opens with 12-byte IVs and 16-byte tags.
class AesGcm {
 public:
  // Keys a context for what it will do: kSeal, kOpen or both (each one
  // costs a key schedule, which a small message notices).
  enum class Use { kSeal, kOpen, kBoth };
  static Result<AesGcm> Create(std::span<const uint8_t> key, Use use = Use::kBoth);
  // `out` has room for plaintext.size() bytes (may be plaintext itself).
  Status Seal(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
              std::span<const uint8_t> plaintext, uint8_t* out, uint8_t* tag);
  // False when the tag does not authenticate (out's bytes are then garbage:
  // the caller wipes them). `out` may be ciphertext itself.
  bool Open(std::span<const uint8_t> iv, std::span<const uint8_t> aad,
            std::span<const uint8_t> ciphertext, std::span<const uint8_t> tag, uint8_t* out);
  // Open in pieces, for a frame that arrives in several writes: Begin, any
  // number of Update (each writes ciphertext.size() bytes at `out`), then
  // Finish with the tag. Nothing opened may be used unless Finish is true.
  bool BeginOpen(std::span<const uint8_t> iv, std::span<const uint8_t> aad);
  bool UpdateOpen(std::span<const uint8_t> ciphertext, uint8_t* out);
  bool FinishOpen(std::span<const uint8_t> tag);

 private:
  struct Free {
    void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
  };
  explicit AesGcm(EVP_CIPHER_CTX* encrypt, EVP_CIPHER_CTX* decrypt)
      : encrypt_(encrypt), decrypt_(decrypt) {}
  std::unique_ptr<EVP_CIPHER_CTX, Free> encrypt_;
  std::unique_ptr<EVP_CIPHER_CTX, Free> decrypt_;
};

// The header's tag: AES-GCM of nothing, IV zero, the header body as AAD.
Result<std::array<uint8_t, kTagBytes>> HeaderTag(AesGcm& cipher, std::span<const uint8_t> body);

// ECDSA over a whole message as it streams by.
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

class Signer {
 public:
  // A fresh key pair on the suite's curve.
  static Result<Signer> Generate(const Suite& suite);
  // The same key pair with a fresh digest: for another message (a cached
  // data key's materials carry their signing key).
  Result<Signer> Fork() const;
  // The verification key as the context carries it: base64 of the
  // compressed point.
  const std::string& public_key_text() const { return public_key_text_; }
  Status Update(std::span<const uint8_t> bytes);
  // The DER signature (ECDSA-Sig-Value).
  Result<Bytes> Finish();

 private:
  Status StartDigest();

  Pkey key_;
  std::unique_ptr<EVP_MD_CTX, MdContextFree> digest_;
  std::string public_key_text_;
  const char* digest_name_ = nullptr;
};

class Verifier {
 public:
  // From the context's base64 compressed point; INVALID_CIPHERTEXT when it
  // is not a point of the suite's curve.
  static Result<Verifier> Create(const Suite& suite, std::string_view public_key_text);
  Status Update(std::span<const uint8_t> bytes);
  // INVALID_CIPHERTEXT unless `signature` signs what went through Update.
  Status Finish(std::span<const uint8_t> signature);

 private:
  Pkey key_;
  std::unique_ptr<EVP_MD_CTX, MdContextFree> digest_;
};

}  // namespace kmsd::esdk
