#include "client/backup/escrow.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "client/esdk/raw_rsa_keyring.h"
#include "protocol/hex.h"

namespace kmsd::backup {

Result<std::string> EscrowKeyName(std::string_view pem) {
  std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                          BIO_free);
  const bool is_private = pem.find("PRIVATE KEY-----") != std::string_view::npos;
  // No passphrase callback: an encrypted private key fails here, as it does
  // in the raw RSA keyring.
  EVP_PKEY* key = nullptr;
  if (bio) {
    key = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>(""))
                     : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  }
  if (key == nullptr) return Error(Code::kInvalidArgument, "not a PEM RSA key the escrow can use");
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> owned(key, EVP_PKEY_free);
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return Error(Code::kInvalidArgument, "cannot encode the escrow public key");
  unsigned char digest[32];
  const bool hashed =
      EVP_Digest(der, static_cast<size_t>(length), digest, nullptr, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!hashed) return Error(Code::kInternal, "OpenSSL: SHA-256 failed");
  return "sha256-" + Hex({digest, 16});
}

Result<std::unique_ptr<esdk::Keyring>> EscrowKeyring(std::string_view pem) {
  ASSIGN_OR_RETURN(std::string name, EscrowKeyName(pem));
  ASSIGN_OR_RETURN(auto keyring,
                   esdk::RawRsaKeyring::FromPem(std::string(kEscrowNamespace), std::move(name),
                                                esdk::RsaPadding::kOaepSha256, pem));
  return std::unique_ptr<esdk::Keyring>(std::move(keyring));
}

}  // namespace kmsd::backup
