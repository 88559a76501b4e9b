// The in-memory catalog of KeyHierarchy: tenants, keys and versions as loaded
// from the keystore, with the token handles they need. Shared by the files
// that implement KeyHierarchy; not for use outside keystore/. The guards are
// KeyHierarchy's: the catalog maps are guarded by mu_, changes are made with
// write_mu_ held; the atomics below are read without locks.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "keystore/hierarchy.h"

namespace kmsd {

// A key version unwrapped into a session object of the token. The object is
// destroyed when the last holder lets go: the catalog holds one reference
// while the version can be used, and every request that uses the handle holds
// another until its token call returns, so no request can ever use a handle
// that was destroyed (and perhaps reused by the module for another key).
class UnwrappedVersion {
 public:
  UnwrappedVersion(pkcs11::Token& token, pkcs11::ObjectHandle handle)
      : token_(token), handle_(handle) {}
  ~UnwrappedVersion() { (void)token_.DestroyObject(handle_); }
  UnwrappedVersion(const UnwrappedVersion&) = delete;
  UnwrappedVersion& operator=(const UnwrappedVersion&) = delete;
  pkcs11::ObjectHandle handle() const { return handle_; }

 private:
  pkcs11::Token& token_;
  const pkcs11::ObjectHandle handle_;
};

struct KeyHierarchy::Version {
  uint32_t number = 0;
  Bytes wrapped;
  int64_t created_at = 0;
  // Empty until first use and again once the version is forgotten (shredded).
  mutable std::atomic<std::shared_ptr<const UnwrappedVersion>> unwrapped;
  // Encryptions begun (may pass the limit: those beyond it were refused) and
  // reserved in the keystore; used <= reserved for every one that went ahead.
  std::atomic<uint64_t> used{0};
  std::atomic<uint64_t> reserved{0};
};

struct KeyHierarchy::Key {
  KeyRecord record;
  // Handle of the token KEK named by record.kek_label; nullopt if the key has
  // none (made before schema 3) or the token no longer has it (shredded).
  std::optional<pkcs11::ObjectHandle> kek;
  std::vector<std::unique_ptr<Version>> versions;  // versions[i].number == i + 1
};

struct KeyHierarchy::Tenant {
  TenantRecord record;
  std::optional<pkcs11::ObjectHandle> root;  // nullopt: the token no longer has it
  std::map<std::string, std::unique_ptr<Key>, std::less<>> keys;  // by name
  std::map<std::string, AliasRecord, std::less<>> aliases;        // by alias name
};

// CKA_LABEL of a key's first KEK: tenants/<tenant>/keys/<key id in hex>.
std::string KekLabel(std::string_view tenant, const KeyId& id);

}  // namespace kmsd
