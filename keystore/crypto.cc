// Encrypt and decrypt: the catalog lookup under its read lock, the nonce
// budget (invariant 6) outside it, then the AEAD in the token (invariant 3,
// internal/crypto.h). A version is unwrapped into a session object on first
// use; the request holds its handle until the token call returns. After the
// token reconnected (pkcs11/token.h, "Losing the token") a cached handle is
// stale: it is unwrapped again, and a request whose handle went stale
// between its lookup and its token call looks it up once more.
#include "keystore/internal/crypto.h"

#include <spdlog/spdlog.h>

#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"

namespace kmsd {

using keystore_internal::CheckKeyUsable;

Result<KeyHierarchy::VersionHandle> KeyHierarchy::HandleFor(const Tenant& tenant, const Key& key,
                                                            const Version& version) const {
  if (VersionHandle unwrapped = version.unwrapped.load(); unwrapped && unwrapped->current()) {
    return unwrapped;
  }
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle kek, keystore_internal::WrappingKeyOf(tenant, key));
  std::lock_guard lock(unwrap_mu_);
  if (VersionHandle unwrapped = version.unwrapped.load(); unwrapped && unwrapped->current()) {
    return unwrapped;
  }
  auto handle = token_.UnwrapAesKey(kek, version.wrapped);
  if (!handle) {
    if (handle.error().code() == Code::kNotFound) {
      return Error(Code::kNotFound, "key '" + key.record.name + "' of tenant '" +
                                        tenant.record.name +
                                        "': its key material is no longer in the token (shredded)");
    }
    return Error(handle.error());
  }
  auto unwrapped = std::make_shared<const UnwrappedVersion>(token_, *handle);
  version.unwrapped.store(unwrapped);
  return unwrapped;
}

Result<KeyHierarchy::VersionHandle> KeyHierarchy::RefreshHandle(std::string_view tenant_name,
                                                                const KeyId& key_id,
                                                                uint32_t version) const {
  auto lock = catalog_->ReadLock();
  ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
  const Key* key = catalog_->KeyById(key_id);
  if (key == nullptr || key->record.tenant != tenant_name || version > key->versions.size()) {
    return Error(Code::kNotFound, "the key was shredded");
  }
  RETURN_IF_ERROR(CheckKeyUsable(key->record));
  return HandleFor(*tenant, *key, *key->versions[version - 1]);
}

Result<KeyHierarchy::UsableVersion> KeyHierarchy::UsableLatest(std::string_view tenant_name,
                                                               std::string_view key_ref) const {
  UsableVersion usable;
  std::shared_ptr<keystore_internal::NonceBudget> budget;
  {
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
    ASSIGN_OR_RETURN(const Key* key, catalog_->ResolveKey(*tenant, key_ref));
    RETURN_IF_ERROR(CheckKeyUsable(key->record));
    const Version& version = *key->versions.back();
    ASSIGN_OR_RETURN(usable.handle, HandleFor(*tenant, *key, version));
    usable.key_id = key->record.id;
    usable.key_name = key->record.name;
    usable.version = version.number;
    budget = version.budget;
  }
  // Outside the catalog's lock: a reservation is a durable keystore write.
  ASSIGN_OR_RETURN(bool counted, budget->Count(*store_, usable.key_id, usable.version,
                                               lifecycle_.max_encryptions_per_version));
  usable.exhausted = !counted;
  return usable;
}

Status KeyHierarchy::RotateExhausted(const KeyId& key_id, uint32_t version) {
  std::lock_guard write(write_mu_);
  const Key* key;
  {
    auto lock = catalog_->ReadLock();
    key = catalog_->KeyById(key_id);
    if (key == nullptr) return Status(Code::kNotFound, "the key was shredded");
    if (key->versions.size() != version) return OkStatus();  // another request rotated it
    RETURN_IF_ERROR(catalog_->ServingTenant(key->record.tenant));
    RETURN_IF_ERROR(CheckKeyUsable(key->record));
  }
  spdlog::info("tenant {}: key {} version {} reached {} encryptions", key->record.tenant,
               key->record.name, version, lifecycle_.max_encryptions_per_version);
  return AddVersion(*key);
}

Result<EncryptOutput> KeyHierarchy::Encrypt(std::string_view tenant, std::string_view key_ref,
                                            std::span<const uint8_t> plaintext,
                                            const EncryptionContext& context) {
  ASSIGN_OR_RETURN(UsableVersion usable, UsableLatest(tenant, key_ref));
  // Rotation makes a fresh version; more than a few rounds means requests are
  // using up whole versions between two rotations, which limits that small allow.
  for (int round = 0; usable.exhausted; ++round) {
    if (round == 8) {
      return Error(Code::kThrottled,
                   "key '" + usable.key_name + "' is rotating on its encryption limit; retry");
    }
    RETURN_IF_ERROR(RotateExhausted(usable.key_id, usable.version));
    ASSIGN_OR_RETURN(usable, UsableLatest(tenant, key_ref));
  }
  auto seal = [&] {
    return keystore_internal::Seal(token_, usable.handle->key(), usable.key_id, usable.version,
                                   tenant, context, plaintext);
  };
  Result<Bytes> sealed = seal();
  if (!sealed && !usable.handle->current()) {
    ASSIGN_OR_RETURN(usable.handle, RefreshHandle(tenant, usable.key_id, usable.version));
    sealed = seal();
  }
  if (!sealed) return Error(sealed.error());
  EncryptOutput out;
  out.ciphertext = std::move(*sealed);
  out.key_id = usable.key_id;
  out.key_name = std::move(usable.key_name);
  out.version = usable.version;
  return out;
}

Result<DecryptOutput> KeyHierarchy::Decrypt(std::string_view tenant_name,
                                            std::span<const uint8_t> ciphertext,
                                            const EncryptionContext& context,
                                            std::optional<std::string_view> expected_key_ref) {
  ASSIGN_OR_RETURN(ParsedCiphertext parsed, ParseCiphertext(ciphertext));
  DecryptOutput out;
  VersionHandle handle;  // held until the token call returns
  {
    auto lock = catalog_->ReadLock();
    ASSIGN_OR_RETURN(const Tenant* tenant, catalog_->ServingTenant(tenant_name));
    const Key* key = catalog_->KeyById(parsed.key_id);
    // Another tenant's key id looks exactly like an unknown one: no oracle.
    if (key == nullptr || key->record.tenant != tenant_name) {
      return Error(Code::kInvalidCiphertext, "ciphertext was not made by a key of this tenant");
    }
    if (expected_key_ref) {
      ASSIGN_OR_RETURN(const Key* expected, catalog_->ResolveKey(*tenant, *expected_key_ref));
      if (expected != key) {
        return Error(Code::kInvalidCiphertext, "ciphertext was made by another key than '" +
                                                   std::string(*expected_key_ref) + "'");
      }
    }
    if (parsed.version > key->versions.size()) {
      return Error(Code::kInvalidCiphertext, "ciphertext names a version its key does not have");
    }
    RETURN_IF_ERROR(CheckKeyUsable(key->record));
    if (parsed.version < key->record.min_decryption_version) {
      return Error(Code::kKeyDisabled, "version " + std::to_string(parsed.version) + " of key '" +
                                           key->record.name +
                                           "' is below its minimum decryption version " +
                                           std::to_string(key->record.min_decryption_version));
    }
    ASSIGN_OR_RETURN(handle, HandleFor(*tenant, *key, *key->versions[parsed.version - 1]));
    out.key_id = key->record.id;
    out.key_name = key->record.name;
    out.version = parsed.version;
  }
  auto open = [&] {
    return keystore_internal::Open(token_, handle->key(), parsed, tenant_name, context);
  };
  Result<SecretBuffer> plaintext = open();
  if (!plaintext && !handle->current()) {
    ASSIGN_OR_RETURN(handle, RefreshHandle(tenant_name, out.key_id, out.version));
    plaintext = open();
  }
  if (!plaintext) return Error(plaintext.error());
  out.plaintext = std::move(*plaintext);
  return out;
}

}  // namespace kmsd
