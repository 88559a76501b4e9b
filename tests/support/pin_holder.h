// PinHolder: someone who holds the token's user PIN and a copy of the keystore
// and talks to the PKCS#11 module directly, without kmsd (DESIGN.md invariant
// 1). It dlopens the module, finds the token by label, logs in as CKU_USER on
// an R/W session and tries every route by which a key kmsd made could leave
// the token, be changed, or be copied into something that outlives shredding.
// Every attempt is recorded with the CK_RV the module returned, so that a test
// asserts the exact code per route; routes that unexpectedly succeed are
// followed through (the made object's CKA_VALUE is read, then it is destroyed)
// so that a run against weaker code shows what actually leaked.
//
// Written against the PKCS#11 API and SQLite only: it shares no code with
// kmsd's pkcs11/ or keystore/, so it attacks what kmsd left behind, not what
// kmsd believes it made. Its templates are its own copies of what kmsd asks
// for (docs/FORMATS.md, "What a holder of the token PIN can and cannot do").
//
// C_Initialize is per process: at most one PinHolder at a time, in a process
// that does not otherwise load the module. Not thread-safe; one owner.
// Set-up failures (no module, no token, wrong PIN) throw std::runtime_error.
#pragma once

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace kmsd::testing {

// A persistent secret key on the token.
struct TokenKey {
  std::string label;
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_KEY_TYPE key_type = CKK_VENDOR_DEFINED;
};

// One key version as the keystore holds it: wrapped bytes and the label of
// the token key that unwraps them (the key's kek_label, or its tenant's
// root_label for keys made before per-key KEKs).
struct StoredVersion {
  std::string tenant;
  std::string key_name;
  std::string key_id;  // 32 lowercase hex digits
  uint64_t version = 0;
  std::string wrapping_label;
  std::vector<uint8_t> wrapped;
  std::string Name() const;  // "acme/billing v2"
};

struct KeystoreCopy {
  std::vector<StoredVersion> versions;
  std::set<std::string> token_labels;               // every non-empty kek_label and root_label
  std::vector<std::string> queued_for_destruction;  // token_objects_to_destroy
};

// Reads a keystore database file (read-only, with sqlite3 directly).
KeystoreCopy ReadKeystore(const std::string& db_path);

// One attempt: which route, on which object or version, and what the module said.
struct Attempt {
  std::string route;
  std::string target;
  CK_RV rv = CKR_GENERAL_ERROR;
};

class PinHolder {
 public:
  static std::unique_ptr<PinHolder> Login(const std::string& module_path,
                                          const std::string& token_label, const std::string& pin);
  ~PinHolder();
  PinHolder(const PinHolder&) = delete;
  PinHolder& operator=(const PinHolder&) = delete;

  // Every persistent secret key, by C_FindObjects over the whole token.
  std::vector<TokenKey> SecretKeys();
  // How many persistent objects of any class the token holds, leaving out
  // the audit log's head (data objects labelled global/audit-log-head, which
  // kmsd replaces at every commit: one, or two for a moment).
  size_t CountTokenObjects();
  // The data objects labelled global/audit-log-head.
  size_t CountAuditHeads();
  // How many persistent objects match `query` (at most 4096).
  size_t CountMatching(CK_ATTRIBUTE* query, CK_ULONG count);
  // The objects that match `query` (at most 4096).
  std::vector<CK_OBJECT_HANDLE> FindHandles(CK_ATTRIBUTE* query, CK_ULONG count);
  // The persistent secret keys labelled `label`.
  std::vector<CK_OBJECT_HANDLE> FindKeys(const std::string& label);
  // Label, key type and every boolean attribute of every persistent secret
  // key, as one comparable string per label.
  std::map<std::string, std::string> Describe();

  // How `key` falls short of a hardened token key (pkcs11/token.h): a
  // boolean attribute with the wrong value, or, on an AES key, an unwrap
  // template that does not force what it unwraps to be sensitive and
  // non-extractable. Empty for a hardened key.
  std::vector<std::string> Weaknesses(const TokenKey& key);

  // Every export, modification, copy, wrap, derive and data-usage route on a
  // token key, plus the use a PIN holder is allowed (HMAC keys: sign and
  // verify; AES keys: wrap a fresh key that matches the wrap template).
  std::vector<Attempt> AttackTokenKey(const TokenKey& key);
  // Every unwrap template that would yield an exportable, usable-for-more or
  // persistent copy of `version` under `wrapping_key`; then the compliant
  // unwrap as a positive control, with AES-GCM through it and every export
  // route on the unwrapped object, which is destroyed at the end.
  std::vector<Attempt> AttackVersion(const StoredVersion& version, CK_OBJECT_HANDLE wrapping_key);

  // What a PIN holder may do: unwrap a version into a sensitive,
  // non-extractable session object of this holder's session...
  CK_RV UnwrapUsable(CK_OBJECT_HANDLE wrapping_key, std::span<const uint8_t> wrapped,
                     CK_OBJECT_HANDLE* key);
  // ... and decrypt a kmsd ciphertext (docs/FORMATS.md, version 1, empty
  // encryption context) with it.
  CK_RV DecryptCiphertext(CK_OBJECT_HANDLE key, const std::string& tenant,
                          std::span<const uint8_t> ciphertext, std::string* plaintext);
  // Closes the holder's session (its session objects die) and opens another.
  void ReopenSession();

 private:
  PinHolder() = default;
  CK_SESSION_HANDLE OpenSession();
  CK_RV ReadValue(CK_OBJECT_HANDLE object);
  std::optional<bool> ReadBool(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);
  // The boolean entries of an array attribute (an unwrap template); empty if
  // the object has none.
  std::map<CK_ATTRIBUTE_TYPE, bool> ReadTemplateBools(CK_OBJECT_HANDLE object,
                                                      CK_ATTRIBUTE_TYPE type);
  CK_OBJECT_HANDLE AttackerKey();
  // If `made` is a new object, reads its CKA_VALUE (recorded as "<route>,
  // then read CKA_VALUE") and destroys it.
  void FollowUp(const Attempt& attempt, CK_OBJECT_HANDLE made, std::vector<Attempt>& out);
  void ModifyRoutes(const std::string& prefix, const std::string& target, CK_OBJECT_HANDLE object,
                    std::vector<Attempt>& out);
  void CopyRoutes(const std::string& prefix, const std::string& target, CK_OBJECT_HANDLE object,
                  std::vector<Attempt>& out);
  void WrapRoutes(const std::string& prefix, const std::string& target, CK_OBJECT_HANDLE object,
                  std::vector<Attempt>& out);
  void DeriveRoutes(const std::string& prefix, const std::string& target, CK_OBJECT_HANDLE object,
                    std::vector<Attempt>& out);
  void DataUsageRoutes(const std::string& target, CK_OBJECT_HANDLE object,
                       std::vector<Attempt>& out);
  void UseRoutes(const TokenKey& key, std::vector<Attempt>& out);
  CK_RV GcmRoundTrip(CK_OBJECT_HANDLE key);

  void* library_ = nullptr;
  CK_FUNCTION_LIST* fn_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE attacker_key_ = CK_INVALID_HANDLE;  // made on first use
};

// "CKR_TEMPLATE_INCONSISTENT (0xd1)" for the codes the attacks meet.
std::string RvName(CK_RV rv);

}  // namespace kmsd::testing
