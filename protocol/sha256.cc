#include "protocol/sha256.h"

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

std::array<uint8_t, 32> Sha256Of(std::span<const uint8_t> bytes) {
  // Fetched once for the process's life. A context per call: its state,
  // the digest of what may be a secret, is wiped when it is freed.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  std::array<uint8_t, 32> digest{};
  if (md == nullptr ||
      EVP_Digest(bytes.data(), bytes.size(), digest.data(), nullptr, md, nullptr) != 1) {
    digest.fill(0);
  }
  return digest;
}

std::array<uint8_t, 32> Sha256Of(std::string_view bytes) {
  return Sha256Of(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace kmsd
