// Credential text: how API keys and session tokens are written, so that
// secret scanners can match them and kmsd can find a credential by its id
// before it checks the secret:
//
//   PREFIX<id: 16 lowercase hex digits>_<43 base64url characters: 32 random bytes>
//
// (kmsd_ak_ for API keys, keystore/access_directory.h; kmsd_st_ for session
// tokens, protocol/session_types.h). Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/secret_buffer.h"

namespace kmsd {

inline constexpr size_t kCredentialIdBytes = 8;       // written as 16 hex digits
inline constexpr size_t kCredentialSecretBytes = 32;  // written as 43 base64url characters

constexpr size_t CredentialTextSize(std::string_view prefix) {
  return prefix.size() + 2 * kCredentialIdBytes + 1 + (kCredentialSecretBytes * 4 + 2) / 3;
}

// The id in `text` when it has the shape above with `prefix`, else nullopt.
std::optional<std::string_view> CredentialIdOf(std::string_view text, std::string_view prefix);

// PREFIX + `id` + "_" + base64url(`secret`, kCredentialSecretBytes bytes),
// written straight into secret memory.
SecretBuffer CredentialText(std::string_view prefix, std::string_view id,
                            std::span<const uint8_t> secret);

}  // namespace kmsd
