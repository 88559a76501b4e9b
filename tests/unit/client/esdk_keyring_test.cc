#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "client/esdk/message.h"
#include "client/esdk/multi_keyring.h"
#include "client/esdk/raw_aes_keyring.h"
#include "client/esdk/raw_rsa_keyring.h"

namespace kmsd::esdk {
namespace {

struct RsaPair {
  std::string public_pem;
  std::string private_pem;
};

RsaPair MakeRsa(int bits = 2048) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
  const auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(size));
    BIO_free(bio);
    return out;
  };
  RsaPair pair{pem([&](BIO* bio) { PEM_write_bio_PUBKEY(bio, key); }), pem([&](BIO* bio) {
                 PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
               })};
  EVP_PKEY_free(key);
  return pair;
}

const RsaPair& Rsa() {
  static const RsaPair pair = MakeRsa();
  return pair;
}

std::unique_ptr<Keyring> Aes(std::string name = "aes") {
  return std::move(
      *RawAesKeyring::Create("ns", std::move(name), SecretBuffer::CopyOf(Bytes(32, 0x42))));
}

std::unique_ptr<Keyring> RsaKeyring(bool with_private,
                                    RsaPadding padding = RsaPadding::kOaepSha256) {
  auto keyring = RawRsaKeyring::FromPem("ns", "rsa", padding,
                                        with_private ? Rsa().private_pem : Rsa().public_pem);
  EXPECT_TRUE(keyring.has_value()) << keyring.error().message();
  return std::move(*keyring);
}

Result<Bytes> Encrypt(Keyring& keyring, std::span<const uint8_t> plaintext) {
  KeyringMaterials materials(keyring);
  return EncryptMessage(materials,
                        {.suite_id = kCommittingSuite,
                         .frame_length = 64,
                         .context = {{"a", "b"}},
                         .plaintext_bytes = std::nullopt},
                        plaintext);
}

Result<Bytes> Decrypt(Keyring& keyring, std::span<const uint8_t> message) {
  KeyringMaterials materials(keyring);
  return DecryptMessage(materials, {}, message);
}

const Bytes kPlaintext(300, 0x5A);

TEST(EsdkRawRsaKeyringTest, RoundTripsWithEveryOaepHash) {
  for (RsaPadding padding : {RsaPadding::kOaepSha1, RsaPadding::kOaepSha256,
                             RsaPadding::kOaepSha384, RsaPadding::kOaepSha512}) {
    auto message = Encrypt(*RsaKeyring(false, padding), kPlaintext);
    ASSERT_TRUE(message.has_value()) << message.error().message();
    auto plaintext = Decrypt(*RsaKeyring(true, padding), *message);
    ASSERT_TRUE(plaintext.has_value()) << plaintext.error().message();
    EXPECT_EQ(*plaintext, kPlaintext);
    // Another padding does not decrypt it.
    const RsaPadding other =
        padding == RsaPadding::kOaepSha1 ? RsaPadding::kOaepSha256 : RsaPadding::kOaepSha1;
    EXPECT_EQ(Decrypt(*RsaKeyring(true, other), *message).error().code(), Code::kInvalidCiphertext);
  }
}

TEST(EsdkRawRsaKeyringTest, KeepsThePublicAndPrivateRolesApart) {
  EXPECT_EQ(Encrypt(*RsaKeyring(true), kPlaintext).error().code(), Code::kInvalidArgument);
  auto message = Encrypt(*RsaKeyring(false), kPlaintext);
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(Decrypt(*RsaKeyring(false), *message).error().code(), Code::kInvalidArgument);
  // PKCS#1 v1.5 reads old messages only.
  EXPECT_EQ(Encrypt(*RsaKeyring(false, RsaPadding::kPkcs1), kPlaintext).error().code(),
            Code::kInvalidArgument);
  // Keys that are not RSA or too short, and the reserved namespace.
  EXPECT_EQ(RawRsaKeyring::FromPem("ns", "rsa", RsaPadding::kOaepSha1, "not pem").error().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(RawRsaKeyring::FromPem("ns", "rsa", RsaPadding::kOaepSha1, MakeRsa(1024).public_pem)
                .error()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(RawRsaKeyring::FromPem("aws-kms", "rsa", RsaPadding::kOaepSha1, Rsa().public_pem)
                .error()
                .code(),
            Code::kInvalidArgument);
}

TEST(EsdkRawAesKeyringTest, RefusesBadKeysAndNames) {
  for (size_t size : {0, 15, 17, 31, 33, 64}) {
    EXPECT_EQ(RawAesKeyring::Create("ns", "k", SecretBuffer::CopyOf(Bytes(size, 1))).error().code(),
              Code::kInvalidArgument)
        << size;
  }
  for (size_t size : {16, 24, 32}) {
    auto keyring = RawAesKeyring::Create("ns", "k", SecretBuffer::CopyOf(Bytes(size, 1)));
    ASSERT_TRUE(keyring.has_value());
    auto message = Encrypt(**keyring, kPlaintext);
    ASSERT_TRUE(message.has_value());
    EXPECT_EQ(*Decrypt(**keyring, *message), kPlaintext);
  }
  EXPECT_FALSE(RawAesKeyring::Create("", "k", SecretBuffer::CopyOf(Bytes(16, 1))).has_value());
  EXPECT_FALSE(
      RawAesKeyring::Create("aws-kms", "k", SecretBuffer::CopyOf(Bytes(16, 1))).has_value());
}

TEST(EsdkMultiKeyringTest, EveryKeyringAloneDecryptsWhatTheMultiKeyringEncrypted) {
  std::vector<std::unique_ptr<Keyring>> children;
  children.push_back(RsaKeyring(false));
  children.push_back(Aes("second"));
  MultiKeyring multi(Aes(), std::move(children));
  auto message = Encrypt(multi, kPlaintext);
  ASSERT_TRUE(message.has_value()) << message.error().message();
  Header header;
  {
    auto aes = Aes();
    KeyringMaterials materials(*aes);
    ASSERT_TRUE(DecryptMessage(materials, {}, *message, &header).has_value());
  }
  ASSERT_EQ(header.edks.size(), 3u);
  EXPECT_EQ(header.edks[0].provider_id, "ns");
  EXPECT_EQ(*Decrypt(*Aes(), *message), kPlaintext);
  EXPECT_EQ(*Decrypt(*RsaKeyring(true), *message), kPlaintext);
  EXPECT_EQ(*Decrypt(*Aes("second"), *message), kPlaintext);
  EXPECT_EQ(Decrypt(*Aes("third"), *message).error().code(), Code::kInvalidCiphertext);
  // A multi-keyring decrypts with the first of its keyrings that can.
  std::vector<std::unique_ptr<Keyring>> readers;
  readers.push_back(Aes("third"));
  readers.push_back(RsaKeyring(true));
  MultiKeyring reader(nullptr, std::move(readers));
  EXPECT_EQ(*Decrypt(reader, *message), kPlaintext);
  // Without a generator it cannot start a message.
  MultiKeyring no_generator(nullptr, {});
  EXPECT_EQ(Encrypt(no_generator, kPlaintext).error().code(), Code::kInvalidArgument);
}

// A writer never makes what readers with the default limits refuse.
TEST(EsdkMultiKeyringTest, RefusesToWriteMoreEdksThanReadersTake) {
  const auto multi_of = [](size_t keyrings) {
    std::vector<std::unique_ptr<Keyring>> children;
    for (size_t i = 1; i < keyrings; ++i) children.push_back(Aes("child" + std::to_string(i)));
    return MultiKeyring(Aes(), std::move(children));
  };
  MultiKeyring sixteen = multi_of(16);
  EXPECT_TRUE(Encrypt(sixteen, kPlaintext).has_value());
  MultiKeyring seventeen = multi_of(17);
  EXPECT_EQ(Encrypt(seventeen, kPlaintext).error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kmsd::esdk
