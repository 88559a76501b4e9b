// Re-wrapping a message: the same data key under other encrypted data keys,
// without touching the body.
//
// A message's frames are sealed under a key derived from the data key and
// the message id; their AAD names the message id, never the header. So the
// body stays valid when only the EDK list changes. But the header's tag is
// AES-GCM under that derived key over the header body, EDKs included: a new
// EDK list needs a new tag, and the tag needs the data key. Whoever
// re-wraps must hold the data key for a moment (kmsd's re-encrypt cannot do
// it alone: it never releases the data key, and the tag is not a KMS
// operation). A signed message (0x0578) cannot be re-wrapped at all: its
// ECDSA signature covers the header, and only the per-message signing key,
// discarded when the message was written, could sign the new one.
//
// Stateless; thread-safe.
#pragma once

#include <span>
#include <vector>

#include "client/esdk/header.h"

namespace kmsd::esdk {

// The new header (body and authentication) of `header` with `edks`: after
// checking that `data_key` is the message's (its key commitment) and that
// the present header authenticates under it, so that a tampered header is
// never re-authenticated. INVALID_CIPHERTEXT when either check fails;
// INVALID_ARGUMENT for a signed or version 1 message, or no EDKs.
Result<Bytes> RewrapHeader(const Header& header, std::span<const uint8_t> data_key,
                           std::vector<EncryptedDataKey> edks);

}  // namespace kmsd::esdk
