// SHA-256 with the digest fetched from OpenSSL once and the context reused:
// OpenSSL 3's one-shot SHA256() looks the algorithm up by name on every call
// (per-file set-up showed in a backup of 20,000 small files; per-entry in
// the audit log, the API key and session checks). A Sha256 is one thread's;
// Sha256Of is thread-safe and leaves no state of a secret it digested.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

class Sha256 {
 public:
  Sha256();
  // Begins a new digest; INTERNAL if OpenSSL cannot.
  Status Start();
  void Update(std::span<const uint8_t> bytes);
  std::array<uint8_t, 32> Finish();

 private:
  std::unique_ptr<EVP_MD, void (*)(EVP_MD*)> md_;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context_;
};

// The digest of `bytes`; all zero only if OpenSSL cannot make one (no memory).
std::array<uint8_t, 32> Sha256Of(std::span<const uint8_t> bytes);
std::array<uint8_t, 32> Sha256Of(std::string_view bytes);

}  // namespace kmsd
