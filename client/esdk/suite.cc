#include "client/esdk/suite.h"

#include <array>
#include <cstdio>

namespace kmsd::esdk {
namespace {

constexpr std::array kSuites = {
    // Version 2, committing.
    Suite{0x0578, 2, 32, Kdf::kHkdfSha512, true, Signature::kEcdsaP384Sha384, 32},
    Suite{0x0478, 2, 32, Kdf::kHkdfSha512, true, Signature::kNone, 32},
    // Version 1, with HKDF and a signature.
    Suite{0x0378, 1, 32, Kdf::kHkdfSha384, false, Signature::kEcdsaP384Sha384, 0},
    Suite{0x0346, 1, 24, Kdf::kHkdfSha384, false, Signature::kEcdsaP384Sha384, 0},
    Suite{0x0214, 1, 16, Kdf::kHkdfSha256, false, Signature::kEcdsaP256Sha256, 0},
    // Version 1, with HKDF.
    Suite{0x0178, 1, 32, Kdf::kHkdfSha256, false, Signature::kNone, 0},
    Suite{0x0146, 1, 24, Kdf::kHkdfSha256, false, Signature::kNone, 0},
    Suite{0x0114, 1, 16, Kdf::kHkdfSha256, false, Signature::kNone, 0},
    // Version 1, the data key used as it is.
    Suite{0x0078, 1, 32, Kdf::kIdentity, false, Signature::kNone, 0},
    Suite{0x0046, 1, 24, Kdf::kIdentity, false, Signature::kNone, 0},
    Suite{0x0014, 1, 16, Kdf::kIdentity, false, Signature::kNone, 0},
};

}  // namespace

const Suite* FindSuite(uint16_t id) {
  for (const Suite& suite : kSuites) {
    if (suite.id == id) return &suite;
  }
  return nullptr;
}

std::optional<CommitmentPolicy> CommitmentPolicyNamed(std::string_view name) {
  if (name == "require" || name == "require-encrypt-require-decrypt") {
    return CommitmentPolicy::kRequireEncryptRequireDecrypt;
  }
  if (name == "allow-v1" || name == "require-encrypt-allow-decrypt") {
    return CommitmentPolicy::kRequireEncryptAllowDecrypt;
  }
  return std::nullopt;
}

Status CheckDecryptAllowed(const Suite& suite, CommitmentPolicy policy) {
  if (suite.committing || policy == CommitmentPolicy::kRequireEncryptAllowDecrypt) {
    return OkStatus();
  }
  char id[8];
  std::snprintf(id, sizeof id, "%04x", suite.id);
  return Status(Code::kInvalidCiphertext,
                std::string("the message uses algorithm suite 0x") + id +
                    ", which does not commit to its key; the commitment policy "
                    "require-encrypt-require-decrypt refuses it (allow-v1 reads it)");
}

}  // namespace kmsd::esdk
