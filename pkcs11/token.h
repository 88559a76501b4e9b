// Token: a logged-in PKCS#11 token and the few operations kmsd needs from it.
//
// Keys never leave the token in plaintext: token keys are created
// non-extractable and sensitive; key versions are generated in the token and
// come out only wrapped (CKM_AES_KEY_WRAP_PAD, RFC 5649); in use they are
// unwrapped into non-extractable session objects that live as long as the
// Token. Data keys are random bytes from the token that are then encrypted
// like any plaintext.
//
// Thread-safe: crypto operations draw a session from a pool (a PKCS#11
// session runs one operation at a time); object creation goes through one
// "holder" session, which owns the session objects and stays open until the
// Token dies. Lookups by label (C_FindObjects, a linear scan) are for start-up
// only: callers keep the handles.
#pragma once

#include <p11-kit/pkcs11.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pkcs11/module.h"
#include "protocol/ciphertext.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd::pkcs11 {

using ObjectHandle = CK_OBJECT_HANDLE;

struct TokenObject {
  std::string label;
  ObjectHandle handle;
};

struct TokenInfo {
  std::string label;
  std::string manufacturer;
  std::string model;
  CK_SLOT_ID slot = 0;
};

class Token {
 public:
  // Finds the token by label, logs in as user, opens `pool_size` sessions.
  static Result<std::unique_ptr<Token>> Open(std::shared_ptr<Module> module, std::string_view label,
                                             const SecretBuffer& user_pin, size_t pool_size);
  ~Token();
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  const TokenInfo& info() const { return info_; }
  const Module& module() const { return *module_; }

  // Start-up only: every persistent secret key on the token with its label.
  Result<std::vector<TokenObject>> ListTokenSecretKeys();
  // The persistent secret keys labelled exactly `label` (the token searches).
  Result<std::vector<ObjectHandle>> FindTokenSecretKeysByLabel(std::string_view label);

  // Persistent, non-extractable, sensitive AES-256 key. A wrapping key can
  // only wrap and unwrap (a tenant root); otherwise it can also encrypt.
  Result<ObjectHandle> CreateTokenAesKey(std::string_view label, bool wrapping_only);
  // Persistent, non-extractable, sensitive 256-bit HMAC-SHA256 key.
  Result<ObjectHandle> CreateTokenHmacKey(std::string_view label);
  Status DestroyObject(ObjectHandle handle);

  // A fresh AES-256 key generated in the token, returned wrapped under
  // `wrapping_key`; the unwrapped object is destroyed before return.
  Result<Bytes> GenerateWrappedAesKey(ObjectHandle wrapping_key);
  // Unwraps into a session object: non-extractable, sensitive, encrypt and
  // decrypt only. NOT_FOUND if `wrapping_key` no longer exists.
  Result<ObjectHandle> UnwrapAesKey(ObjectHandle wrapping_key, std::span<const uint8_t> wrapped);

  // AES-256-GCM, 96-bit IV, 128-bit tag. Output is ciphertext || tag.
  Result<Bytes> EncryptGcm(ObjectHandle key, const Iv& iv, std::span<const uint8_t> aad,
                           std::span<const uint8_t> plaintext);
  // INVALID_CIPHERTEXT when the tag does not verify.
  Result<SecretBuffer> DecryptGcm(ObjectHandle key, const Iv& iv, std::span<const uint8_t> aad,
                                  std::span<const uint8_t> ciphertext_and_tag);

  // HMAC-SHA256 with a token key.
  Result<Bytes> HmacSha256(ObjectHandle key, std::span<const uint8_t> data);

  Status GenerateRandom(std::span<uint8_t> out);
  // TOKEN_UNAVAILABLE when the token no longer answers.
  Status Ping();

 private:
  class PooledSession;
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, TokenInfo info);
  Result<CK_SESSION_HANDLE> AcquireSession();
  // C_FindObjects over persistent secret keys, by label if given; holder_mu_ held.
  Result<std::vector<ObjectHandle>> FindTokenSecretKeys(std::optional<std::string_view> label);
  void ReleaseSession(CK_SESSION_HANDLE session);
  Result<ObjectHandle> GenerateKey(std::string_view label, CK_KEY_TYPE type, bool token_object,
                                   bool extractable, bool for_data, bool for_wrapping);

  // Constant after construction.
  std::shared_ptr<Module> module_;
  CK_FUNCTION_LIST* fn_;
  CK_SLOT_ID slot_;
  TokenInfo info_;

  std::mutex holder_mu_;  // serializes use of holder_session_
  CK_SESSION_HANDLE holder_session_ = CK_INVALID_HANDLE;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<CK_SESSION_HANDLE> free_sessions_;  // guarded by pool_mu_
  std::vector<CK_SESSION_HANDLE> all_sessions_;   // constant after Open
};

}  // namespace kmsd::pkcs11
