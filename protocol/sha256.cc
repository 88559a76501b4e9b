#include "protocol/sha256.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kmsd {

Sha256::Sha256()
    : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr), EVP_MD_free),
      context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {}

Status Sha256::Start() {
  if (!md_ || !context_ || EVP_DigestInit_ex2(context_.get(), md_.get(), nullptr) != 1) {
    return Status(Code::kInternal, "OpenSSL: SHA-256 failed");
  }
  return OkStatus();
}

void Sha256::Update(std::span<const uint8_t> bytes) {
  EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size());
}

std::array<uint8_t, 32> Sha256::Finish() {
  std::array<uint8_t, 32> digest{};
  EVP_DigestFinal_ex(context_.get(), digest.data(), nullptr);
  return digest;
}

namespace {

// Fetched once for the process's life; a failed fetch is tried again.
const EVP_MD* Sha256Digest() {
  static std::atomic<EVP_MD*> cached{nullptr};
  if (EVP_MD* md = cached.load(std::memory_order_acquire)) return md;
  EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (fetched == nullptr) return nullptr;
  EVP_MD* expected = nullptr;
  if (!cached.compare_exchange_strong(expected, fetched, std::memory_order_acq_rel)) {
    EVP_MD_free(fetched);  // another thread's came first
    return expected;
  }
  return fetched;
}

}  // namespace

std::array<uint8_t, 32> Sha256Of(std::span<const uint8_t> bytes) {
  // A context per call: its state, the digest of what may be a secret, is
  // wiped when it is freed.
  std::array<uint8_t, 32> digest{};
  const EVP_MD* md = Sha256Digest();
  if (md == nullptr ||
      EVP_Digest(bytes.data(), bytes.size(), digest.data(), nullptr, md, nullptr) != 1) {
    // No digest means no memory left for OpenSSL. Any value returned here
    // could be matched (an API key or session check, the audit chain): stop.
    std::fputs("kmsd: OpenSSL cannot compute SHA-256; stopping\n", stderr);
    std::abort();
  }
  return digest;
}

std::array<uint8_t, 32> Sha256Of(std::string_view bytes) {
  return Sha256Of(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace kmsd
