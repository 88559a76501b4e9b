// The AWS Encryption SDK's algorithm suites (specification: framework/
// algorithm-suites.md) and commitment policies (framework/commitment-
// policy.md), as kmsd's client reads and writes them.
//
// Every suite uses AES-GCM with a 12-byte IV and a 16-byte tag. Version 2
// messages use the committing suites 0x0478 (HKDF-SHA512, key commitment) and
// 0x0578 (the same with an ECDSA P-384 signature); version 1 messages (read
// only, under kAllowV1) use the nine older suites, with or without HKDF and
// signature. Plain values; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/status.h"

namespace kmsd::esdk {

enum class Kdf : uint8_t { kIdentity, kHkdfSha256, kHkdfSha384, kHkdfSha512 };
enum class Signature : uint8_t { kNone, kEcdsaP256Sha256, kEcdsaP384Sha384 };

struct Suite {
  uint16_t id;
  uint8_t message_version;  // 1 or 2
  size_t key_bytes;         // the data key's length and the AES key's: 16, 24 or 32
  Kdf kdf;
  bool committing;
  Signature signature;
  size_t suite_data_bytes;  // in the version 2 header: the commitment key's length
};

inline constexpr size_t kIvBytes = 12;
inline constexpr size_t kTagBytes = 16;
inline constexpr uint16_t kCommittingSuite = 0x0478;
inline constexpr uint16_t kCommittingSignedSuite = 0x0578;

// The suite with that id, or nullptr for one the ESDK does not define.
const Suite* FindSuite(uint16_t id);

enum class CommitmentPolicy : uint8_t {
  kRequireEncryptRequireDecrypt,  // the default: committing suites only
  kRequireEncryptAllowDecrypt,    // also reads version 1 messages
};

// "require" / "allow-v1" (kmsctl's names) and the SDK's own
// "require-encrypt-require-decrypt" / "require-encrypt-allow-decrypt".
std::optional<CommitmentPolicy> CommitmentPolicyNamed(std::string_view name);

// INVALID_CIPHERTEXT when the policy forbids decrypting a message of `suite`.
Status CheckDecryptAllowed(const Suite& suite, CommitmentPolicy policy);

}  // namespace kmsd::esdk
