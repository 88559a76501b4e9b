// Sealer: the audit log's part in the token (docs/AUDIT.md, "Seals"): the
// HMAC of a chain head under global/audit-log-key, and the last sealed head
// kept in the token's data object global/audit-log-head, so that a log cut
// short or put back from an older copy no longer matches it.
//
// TokenSealer is thread-safe (the token is). Tests may fake a Sealer.
#pragma once

#include <memory>
#include <mutex>

#include "pkcs11/token.h"
#include "protocol/audit_entry.h"

namespace kmsd::audit {

// The last seal the token holds: entry `covers` has chain hash `head`
// (covers 0: nothing sealed yet).
struct SealedHead {
  uint64_t covers = 0;
  Digest head{};
  bool operator==(const SealedHead&) const = default;
};

class Sealer {
 public:
  virtual ~Sealer() = default;
  virtual Result<Digest> Mac(std::string_view input) = 0;
  // True when `mac` is Mac(input) (compared in constant time).
  Result<bool> Check(std::string_view input, const Digest& mac);
  virtual Result<SealedHead> ReadHead() = 0;
  virtual Status WriteHead(const SealedHead& head) = 0;
};

// The head is a data object labelled kHeadObjectLabel; a new head is a new
// object, and the one before is destroyed after it exists, so a crash between
// the two leaves both: Open keeps the one that covers more.
class TokenSealer final : public Sealer {
 public:
  // Finds global/audit-log-key and the head object, creating the object
  // (covers 0) when the token has none. INTERNAL if the key is missing or
  // on more than one object.
  static Result<std::unique_ptr<TokenSealer>> Open(pkcs11::Token& token);

  Result<Digest> Mac(std::string_view input) override;
  Result<SealedHead> ReadHead() override;
  Status WriteHead(const SealedHead& head) override;

 private:
  TokenSealer(pkcs11::Token& token, pkcs11::ObjectHandle key, pkcs11::ObjectHandle head)
      : token_(token), key_(key), head_(head) {}
  pkcs11::Token& token_;
  const pkcs11::ObjectHandle key_;
  std::mutex mu_;
  pkcs11::ObjectHandle head_;  // guarded by mu_
};

// The head object's value: covers (8 bytes big-endian), then the head.
Bytes EncodeSealedHead(const SealedHead& head);
Result<SealedHead> DecodeSealedHead(std::span<const uint8_t> value);

}  // namespace kmsd::audit
