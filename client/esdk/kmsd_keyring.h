// The kmsd keyring: data keys from kmsd's generate-data-key for one tenant
// and key (an id, a name or alias/NAME), so the plaintext data key exists
// only in kmsd and in this process, and its EDK is kmsd's ciphertext:
//
//   provider id   = "kmsd"
//   provider info = TENANT "/" KEY-ID (32 hex digits: the key that made it)
//   ciphertext    = kmsd's ciphertext of the data key (docs/FORMATS.md)
//
// kmsd binds that ciphertext to the message's encryption context (the
// context given to generate-data-key, decrypt asks for the same one) and to
// the tenant. Decrypt calls kmsd's decrypt for the EDKs naming this keyring's
// tenant, asking that the ciphertext be under this keyring's key: an EDK of
// another tenant is never sent, and one of another key fails. A keyring with
// no key (empty) only decrypts, under whichever of the tenant's keys made
// the EDK (kmsd still checks that the caller may use it). As a child of a multi-keyring (the
// data key made elsewhere) it calls kmsd's encrypt of the data key.
// kmsd's own errors come back as they are (ACCESS_DENIED, NOT_FOUND,
// UNAVAILABLE, ...). Thread-safe: calls on its connection are serialized.
#pragma once

#include <mutex>
#include <string>

#include "client/connection.h"
#include "client/esdk/keyring.h"

namespace kmsd::esdk {

inline constexpr std::string_view kKmsdProviderId = "kmsd";

class KmsdKeyring final : public Keyring {
 public:
  KmsdKeyring(Connection& connection, std::string tenant, std::string key)
      : connection_(connection), tenant_(std::move(tenant)), key_(std::move(key)) {}
  Status OnEncrypt(EncryptionMaterials& materials) override;
  Status OnDecrypt(DecryptionMaterials& materials, std::span<const EncryptedDataKey> edks) override;

  // How many calls it made to kmsd (tests of the cache count them).
  uint64_t calls() const;

 private:
  EncryptedDataKey MakeEdk(std::string_view key_id, Bytes ciphertext) const;
  std::string Shown() const;  // kmsd:TENANT[/KEY], for messages

  Connection& connection_;
  const std::string tenant_;
  const std::string key_;
  mutable std::mutex mu_;
  uint64_t calls_ = 0;  // guarded by mu_
};

}  // namespace kmsd::esdk
