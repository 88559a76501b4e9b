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
// Each login is followed, for SoftHSM2's file backend, by a copy of its
// token.object that kmsd keeps (softhsm_files.h: SoftHSM2 rewrites that file
// in place on every login, and a crash inside the write would lose the token).
//
// Thread-safe: crypto operations draw a session from a pool (a PKCS#11
// session runs one operation at a time); object creation goes through one
// "holder" session, which owns the session objects. Lookups by label
// (C_FindObjects, a linear scan) are for start-up only: callers keep the
// handles.
//
// Losing the token. A module answer that says the device, the token, the
// sessions or the login are gone (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, ...; or a key handle
// or general error while C_GetTokenInfo fails too) marks the token lost: that
// call and every later one answer TOKEN_UNAVAILABLE, without touching the
// module, until a reconnection works. The next call at least
// kReconnectInterval after the last attempt reconnects: it waits for the
// pooled sessions in use to come back, closes every session of this Token,
// finds the token by label again, opens new sessions and logs in again with
// the PIN, which the Token keeps (a SecretBuffer) for this alone; a PIN the
// token refuses then is never tried again (it would count towards locking
// it): the token stays unavailable until kmsd restarts. Session
// objects die with their sessions, so a reconnection starts a new generation:
// a KeyRef from UnwrapAesKey carries its generation, and a crypto call with a
// key of an earlier generation answers TOKEN_UNAVAILABLE without using the
// handle (the module may have given it to another object since); the caller
// unwraps again. Handles of persistent (token) objects outlive a
// reconnection for the caller, not in the module (SoftHSM2 forgets a private
// object's handle at logout and numbers it anew when it is found again): the
// Token tracks every persistent object it made or found (class, label, and a
// data object's value once known), callers keep the handle they were given,
// and after a reconnection one scan of the token maps each to the object's
// new handle (by label; by value among data objects with the same label). An
// object no longer found (or not told apart) maps to no handle: its uses
// answer as for a destroyed object. This assumes a module does not give an
// old handle's number to another object while it stays initialized
// (SoftHSM2 counts up).
#pragma once

#include <p11-kit/pkcs11.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
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

// A key for a crypto call. A persistent (token) object's handle converts
// implicitly and works in every generation; a session object's (UnwrapAesKey)
// carries the generation of the sessions it lives in.
struct KeyRef {
  KeyRef(ObjectHandle h) : handle(h) {}  // NOLINT: a token key, any generation
  KeyRef(ObjectHandle h, uint64_t g) : handle(h), generation(g) {}
  ObjectHandle handle;
  std::optional<uint64_t> generation;
};

struct TokenInfo {
  std::string label;
  std::string manufacturer;
  std::string model;
  CK_SLOT_ID slot = 0;
  std::string serial;
};

class Token {
 public:
  // How long after a failed reconnection the next one may be tried.
  static constexpr std::chrono::milliseconds kReconnectInterval{100};

  // Finds the token by label, logs in as user, opens `pool_size` sessions.
  // Keeps a copy of the PIN (locked memory) to log in again after a loss.
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
  // Destroys a session object of the current generation; one of an earlier
  // generation died with its session and is left alone (its handle may name
  // another object now), as is any while the token is lost.
  void DestroySessionObject(const KeyRef& key);

  // True when the token key has exactly the attributes kmsd gives it today
  // (its class of key is read from the key). Keys made by kmsd before these
  // attributes existed answer false: they cannot be fixed in place and must
  // be replaced (KeyHierarchy migrates them at start).
  Result<bool> IsHardened(ObjectHandle key);

  // A fresh AES-256 key generated in the token, returned wrapped under
  // `wrapping_key`; the unwrapped object is destroyed before return.
  Result<Bytes> GenerateWrappedAesKey(ObjectHandle wrapping_key);
  // Unwraps into a session object: non-extractable, sensitive, encrypt and
  // decrypt only, of the current generation. NOT_FOUND if `wrapping_key` no
  // longer exists.
  Result<KeyRef> UnwrapAesKey(ObjectHandle wrapping_key, std::span<const uint8_t> wrapped);
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
  // TOKEN_UNAVAILABLE for a key of an earlier generation.
  Result<Bytes> EncryptGcm(const KeyRef& key, const Iv& iv, std::span<const uint8_t> aad,
                           std::span<const uint8_t> plaintext);
  // INVALID_CIPHERTEXT when the tag does not verify.
  Result<SecretBuffer> DecryptGcm(const KeyRef& key, const Iv& iv, std::span<const uint8_t> aad,
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
  // TOKEN_UNAVAILABLE when the token no longer answers or its sessions or
  // login are gone (then it is lost: see above); reconnects a lost token.
  Status Ping();

  // Starts at 0; one more after each reconnection.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  bool lost() const { return lost_.load(std::memory_order_acquire); }

 private:
  class PooledSession;
  struct Lease {
    CK_SESSION_HANDLE session;
    uint64_t generation;
  };
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, TokenInfo info, SecretBuffer pin,
        size_t pool_size);
  // Opens the holder session on `slot`, logs in, opens the pool (holder_mu_
  // held, or before the Token is shared); closes what it opened on failure.
  Status OpenSessions(CK_SLOT_ID slot);
  void KeepSoftHsmTokenObjectCopy() const;
  // OK unless the token is lost and a reconnection (if it is time for one) fails.
  Status EnsureConnected();
  // Replaces every session (reconnect_mu_ held).
  Status Reconnect();
  void MarkLost(const std::string& reason);
  // TOKEN_UNAVAILABLE, saying why the token is lost.
  Status Unavailable() const;
  // True when C_GetTokenInfo works.
  bool Answers();
  // FromRv, but an answer that says the token is gone marks it lost.
  Status Check(CK_RV rv, std::string_view call);
  // Persistent objects (token_objects.cc). Track records a handle the module
  // just gave and returns the one callers hold; Current maps back.
  ObjectHandle Track(ObjectHandle current, CK_OBJECT_CLASS cls, std::string_view label,
                     std::optional<Bytes> value = std::nullopt);
  void Untrack(ObjectHandle stable);
  ObjectHandle Current(ObjectHandle stable) const;
  // The module's handle for a crypto call's key (a session object's as it is).
  ObjectHandle HandleOf(const KeyRef& key) const {
    return key.generation ? key.handle : Current(key.handle);
  }
  // Maps every tracked object to its handle in the new sessions (holder_mu_ held).
  Status RemapObjectsLocked();
  // holder_mu_, once connected; TOKEN_UNAVAILABLE while the token is lost.
  Result<std::unique_lock<std::mutex>> LockHolder();
  // A pooled session; TOKEN_UNAVAILABLE while lost, or when `key` is of
  // another generation than the pool.
  Result<Lease> AcquireSession(const KeyRef* key = nullptr);
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
  TokenInfo info_;  // info_.slot: the slot at Open
  const SecretBuffer pin_;
  const size_t pool_size_;

  // Lock order: reconnect_mu_, holder_mu_, reason_mu_, pool_mu_; objects_mu_ alone.
  std::mutex reconnect_mu_;
  std::chrono::steady_clock::time_point next_attempt_;  // guarded by reconnect_mu_
  uint64_t failed_attempts_ = 0;                        // guarded by reconnect_mu_
  bool pin_refused_ = false;             // guarded by reconnect_mu_: C_Login said the PIN is wrong
  std::atomic<CK_SLOT_ID> slot_;         // changed under all three
  std::atomic<bool> lost_{false};        // changed under pool_mu_
  std::atomic<uint64_t> generation_{0};  // changed under all three
  mutable std::mutex reason_mu_;
  std::string lost_reason_;  // guarded by reason_mu_

  struct Tracked {
    CK_OBJECT_CLASS cls;
    std::string label;
    std::optional<Bytes> value;  // a data object's, once known
    ObjectHandle current;        // CK_INVALID_HANDLE: not found since the reconnection
  };
  mutable std::shared_mutex objects_mu_;               // no module call and no other lock under it
  std::unordered_map<ObjectHandle, Tracked> tracked_;  // by the handle callers hold
  std::unordered_map<ObjectHandle, ObjectHandle> stable_;  // current → held, where they differ

  std::mutex holder_mu_;  // serializes use of holder_session_
  CK_SESSION_HANDLE holder_session_ = CK_INVALID_HANDLE;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<CK_SESSION_HANDLE> free_sessions_;  // guarded by pool_mu_
  std::vector<CK_SESSION_HANDLE> all_sessions_;   // guarded by pool_mu_; replaced by Reconnect
};

}  // namespace kmsd::pkcs11
