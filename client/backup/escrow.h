// A backup's escrow keyring: a raw RSA keyring (OAEP-SHA256) under an
// offline key pair, so that a backup can be restored with the private key
// alone, without kmsd or the token. Namespace kEscrowNamespace; name
// "sha256-" and the first 16 bytes (hex) of the SHA-256 of the public key
// (SubjectPublicKeyInfo, DER), so the private key finds its EDK by itself.
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "client/esdk/keyring.h"

namespace kmsd::backup {

inline constexpr std::string_view kEscrowNamespace = "kmsd-backup-escrow";

// From a PEM public key (to encrypt) or private key (to decrypt).
// INVALID_ARGUMENT when it is neither.
Result<std::unique_ptr<esdk::Keyring>> EscrowKeyring(std::string_view pem);
// The key name EscrowKeyring gives the key in `pem`.
Result<std::string> EscrowKeyName(std::string_view pem);

}  // namespace kmsd::backup
