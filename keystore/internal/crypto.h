// Cryptographic isolation (DESIGN.md invariant 3): a ciphertext binds the
// tenant, the key, the version and the caller's encryption context as
// authenticated data, so tenant B submitting tenant A's ciphertext, or any
// changed context, fails the GCM tag check inside the token. The layout is
// protocol/ciphertext.h's; the AES-GCM runs in the token under the version's
// session object. Private to keystore/.
#pragma once

#include <span>
#include <string_view>

#include "pkcs11/token.h"
#include "protocol/ciphertext.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd::keystore_internal {

// Header (key id, version, a fresh random IV) followed by the AES-GCM
// ciphertext and tag of `plaintext` under `version_key`.
Result<Bytes> Seal(pkcs11::Token& token, const pkcs11::KeyRef& version_key, const KeyId& key_id,
                   uint32_t version, std::string_view tenant, const EncryptionContext& context,
                   std::span<const uint8_t> plaintext);

// The plaintext of a parsed ciphertext, if the tenant and context are those
// it was sealed with.
Result<SecretBuffer> Open(pkcs11::Token& token, const pkcs11::KeyRef& version_key,
                          const ParsedCiphertext& parsed, std::string_view tenant,
                          const EncryptionContext& context);

}  // namespace kmsd::keystore_internal
