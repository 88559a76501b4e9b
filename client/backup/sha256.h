// SHA-256 of one file after another, for the archive's writer and reader:
// the digest is fetched from OpenSSL once and the context reused (per-file
// set-up showed in a tree of 20,000 small files). One thread.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "protocol/status.h"

namespace kmsd::backup {

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

}  // namespace kmsd::backup
