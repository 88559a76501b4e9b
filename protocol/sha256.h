// SHA-256 with the digest fetched from OpenSSL once: OpenSSL 3's one-shot
// SHA256() looks the algorithm up by name on every call (per-file set-up
// showed in a backup of 20,000 small files; per-entry in the audit log, the
// API key and session checks). A Sha256 is one thread's and reuses its
// context; Sha256Of is thread-safe, uses a context per call (freed, and so
// wiped: no state of a secret it digested stays) and never returns a digest
// it could not compute: it aborts kmsd when OpenSSL cannot (out of memory).
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

// The digest of `bytes`.
std::array<uint8_t, 32> Sha256Of(std::span<const uint8_t> bytes);
std::array<uint8_t, 32> Sha256Of(std::string_view bytes);

}  // namespace kmsd
