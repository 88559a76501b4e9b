// Token: a logged-in PKCS#11 token and the few operations kmsd needs from it.
//
// Keys never leave the token in plaintext, also for someone who holds the
// user PIN and uses the module directly (DESIGN.md invariant 1):
// - token keys are created sensitive, non-extractable, not modifiable, not
//   copyable and with only the usages they need (CKA_DERIVE off everywhere);
// - a wrapping key carries a CKA_UNWRAP_TEMPLATE that forces whatever it
//   unwraps to be a sensitive, non-extractable, non-wrapping, non-derivable,
//   non-copyable, non-modifiable session object (PKCS#11 2.40 section 4.8), so
//   a stored version cannot be unwrapped into something readable or into a
//   token object that would outlive shredding; and a CKA_WRAP_TEMPLATE that
//   lets it wrap only fresh AES-256 session keys;
// - key versions are generated as session objects of kmsd's own holder
//   session, extractable only so that they can be wrapped once, and destroyed
//   right after (CKM_AES_KEY_WRAP_PAD, RFC 5649).
// Data keys are random bytes from the token, encrypted like any plaintext.
//
// Thread-safe: crypto operations draw a session from a pool (a PKCS#11
// session runs one operation at a time); object creation goes through one
// "holder" session, which owns the session objects and stays open until the
// Token dies. Lookups by label (C_FindObjects, a linear scan) are for start-up
// only: callers keep the handles.
#pragma once

#include <p11-kit/pkcs11.h>

#include <condition_variable>
#include <map>
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

  // Persistent hardened AES-256 key that can only wrap and unwrap, with the
  // unwrap and wrap templates above (a KEK or the platform master key).
  Result<ObjectHandle> CreateTokenWrappingKey(std::string_view label);
  // Persistent hardened 256-bit HMAC-SHA256 key: sign and verify only.
  Result<ObjectHandle> CreateTokenHmacKey(std::string_view label);
  Status DestroyObject(ObjectHandle handle);

  // True when the token key has exactly the attributes kmsd gives it today
  // (its class of key is read from the key). Keys made by kmsd before these
  // attributes existed answer false: they cannot be fixed in place and must
  // be replaced (KeyHierarchy migrates them at start).
  Result<bool> IsHardened(ObjectHandle key);

  // A fresh AES-256 key generated in the token, returned wrapped under
  // `wrapping_key`; the unwrapped object is destroyed before return.
  Result<Bytes> GenerateWrappedAesKey(ObjectHandle wrapping_key);
  // Unwraps into a session object: non-extractable, sensitive, encrypt and
  // decrypt only. NOT_FOUND if `wrapping_key` no longer exists.
  Result<ObjectHandle> UnwrapAesKey(ObjectHandle wrapping_key, std::span<const uint8_t> wrapped);
  // Moves a wrapped version from `old_key` to `new_key`, through a session
  // object destroyed before return. Works only while `old_key` lacks an unwrap
  // template (a key made before hardening): a hardened key never unwraps into
  // anything that can be wrapped again.
  Result<Bytes> RewrapAesKey(ObjectHandle old_key, std::span<const uint8_t> wrapped,
                             ObjectHandle new_key);

  // For tests of the migration only: a wrapping key with the attributes kmsd
  // gave KEKs and roots before hardening (modifiable, copyable, no templates).
  Result<ObjectHandle> TEST_CreateUnhardenedWrappingKey(std::string_view label);

  // AES-256-GCM, 96-bit IV, 128-bit tag. Output is ciphertext || tag.
  Result<Bytes> EncryptGcm(ObjectHandle key, const Iv& iv, std::span<const uint8_t> aad,
                           std::span<const uint8_t> plaintext);
  // INVALID_CIPHERTEXT when the tag does not verify.
  Result<SecretBuffer> DecryptGcm(ObjectHandle key, const Iv& iv, std::span<const uint8_t> aad,
                                  std::span<const uint8_t> ciphertext_and_tag);

  // HMAC-SHA256 with a token key.
  Result<Bytes> HmacSha256(ObjectHandle key, std::span<const uint8_t> data);

  // Persistent private data objects (CKO_DATA, application "kmsd"): small
  // values kmsd keeps in the token beside its keys (the audit log's sealed
  // head). Readable and replaceable by whoever is logged in: they are a
  // witness against someone without the PIN, not a secret. A data object's
  // value cannot change (SoftHSM2 refuses it, as PKCS#11 allows): a new value
  // is a new object, then the old one is destroyed.
  Result<std::vector<ObjectHandle>> FindTokenDataObjects(std::string_view label);
  Result<ObjectHandle> CreateTokenDataObject(std::string_view label,
                                             std::span<const uint8_t> value);
  Result<Bytes> ReadDataObject(ObjectHandle object);

  Status GenerateRandom(std::span<uint8_t> out);
  // TOKEN_UNAVAILABLE when the token no longer answers.
  Status Ping();

 private:
  class PooledSession;
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, TokenInfo info);
  Result<CK_SESSION_HANDLE> AcquireSession();
  // C_FindObjects over persistent secret keys, by label if given; holder_mu_ held.
  Result<std::vector<ObjectHandle>> FindTokenSecretKeys(std::optional<std::string_view> label);
  // C_FindObjects over persistent objects of `cls` matching `label` if given; holder_mu_ held.
  Result<std::vector<ObjectHandle>> FindTokenObjects(CK_OBJECT_CLASS cls,
                                                     std::optional<std::string_view> label);
  void ReleaseSession(CK_SESSION_HANDLE session);
  // C_GenerateKey on the holder session with `attributes` (a KeyTemplate).
  Result<ObjectHandle> GenerateKey(std::vector<CK_ATTRIBUTE>& attributes, CK_MECHANISM_TYPE mech);
  Result<ObjectHandle> GenerateKeyLocked(std::vector<CK_ATTRIBUTE>& attributes,
                                         CK_MECHANISM_TYPE mech);
  // Unwraps `wrapped` into a session object with `attributes`; holder_mu_ held.
  Result<ObjectHandle> UnwrapLocked(ObjectHandle wrapping_key, std::span<const uint8_t> wrapped,
                                    std::vector<CK_ATTRIBUTE>& attributes);
  // One attribute's bytes, and an array attribute's elements; holder_mu_ held.
  Result<std::string> ReadAttributeLocked(ObjectHandle key, CK_ATTRIBUTE_TYPE type);
  Result<std::map<CK_ATTRIBUTE_TYPE, std::string>> ReadTemplateLocked(ObjectHandle key,
                                                                      CK_ATTRIBUTE_TYPE type);
  // Wraps `key` under `wrapping_key`, then destroys `key`; holder_mu_ held.
  Result<Bytes> WrapAndDestroyLocked(ObjectHandle wrapping_key, ObjectHandle key);

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
