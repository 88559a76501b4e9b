// Messages written by kmsd's client are read by the JavaScript AWS
// Encryption SDK and the other way round (raw AES and raw RSA keyrings, both
// committing suites, every version 1 suite, sizes around the frame length).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>

#include "client/esdk/message.h"
#include "client/esdk/multi_keyring.h"
#include "client/esdk/raw_aes_keyring.h"
#include "client/esdk/raw_rsa_keyring.h"
#include "tests/support/esdk_js.h"
#include "tests/support/esdk_vectors.h"
#include "tests/support/temp_dir.h"

namespace kmsd::testing {
namespace {

using esdk::Bytes;

std::string InteropPattern(size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + 17) % 251);
  return out;
}

std::span<const uint8_t> AsBytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

class EsdkInteropTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    for (size_t bytes : {16, 24, 32}) {
      std::ofstream(*dir_ / ("aes" + std::to_string(bytes)), std::ios::binary)
          << InteropPattern(bytes + 3).substr(3);
    }
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072});
    FILE* out = std::fopen((*dir_ / "rsa.pub").c_str(), "w");
    PEM_write_PUBKEY(out, key);
    std::fclose(out);
    out = std::fopen((*dir_ / "rsa.key").c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    EVP_PKEY_free(key);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Path(const std::string& name) { return *dir_ / name; }
  static std::string ReadFile(const std::string& name) {
    std::ifstream in(Path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static std::unique_ptr<esdk::Keyring> Aes(size_t bytes = 32) {
    const std::string key = ReadFile("aes" + std::to_string(bytes));
    return std::move(*esdk::RawAesKeyring::Create("interop", "aes" + std::to_string(bytes),
                                                  SecretBuffer::CopyOf(key)));
  }
  static std::unique_ptr<esdk::Keyring> Rsa(
      bool private_key, esdk::RsaPadding padding = esdk::RsaPadding::kOaepSha256) {
    auto keyring = esdk::RawRsaKeyring::FromPem("interop", "rsa", padding,
                                                ReadFile(private_key ? "rsa.key" : "rsa.pub"));
    EXPECT_TRUE(keyring.has_value()) << keyring.error().message();
    return std::move(*keyring);
  }
  static std::string JsAes(size_t bytes = 32) {
    return "--aes=interop/aes" + std::to_string(bytes) + ":" + Path("aes" + std::to_string(bytes));
  }
  static std::string JsRsa(bool private_key, const std::string& padding = "oaep-sha256") {
    return "--rsa=interop/rsa:" + Path(private_key ? "rsa.key" : "rsa.pub") + ":" + padding;
  }

  static Result<std::string> Decrypt(esdk::Keyring& keyring, const std::string& message,
                                     esdk::DecryptOptions options = {}) {
    esdk::KeyringMaterials materials(keyring);
    ASSIGN_OR_RETURN(Bytes plaintext, esdk::DecryptMessage(materials, options, AsBytes(message)));
    return std::string(plaintext.begin(), plaintext.end());
  }

  static TempDir* dir_;
};

TempDir* EsdkInteropTest::dir_ = nullptr;

const size_t kSizes[] = {0, 1, 4095, 4096, 4097, 3 << 20};

TEST_F(EsdkInteropTest, TheJavaScriptSdkReadsKmsdMessages) {
  for (uint16_t suite : {esdk::kCommittingSuite, esdk::kCommittingSignedSuite}) {
    for (size_t size : kSizes) {
      std::vector<std::unique_ptr<esdk::Keyring>> children;
      children.push_back(Rsa(false));
      esdk::MultiKeyring keyring(Aes(), std::move(children));
      esdk::KeyringMaterials materials(keyring);
      const std::string plaintext = InteropPattern(size);
      auto message =
          esdk::EncryptMessage(materials,
                               {.suite_id = suite,
                                .frame_length = 4096,
                                .context = {{"tenant", "acme"}, {"path", "orders/2026.csv"}},
                                .plaintext_bytes = std::nullopt},
                               AsBytes(plaintext));
      ASSERT_TRUE(message.has_value()) << message.error().message();
      const std::string bytes(message->begin(), message->end());
      // Each of the two EDKs alone, with the context checked by the SDK.
      for (const std::string& keyring_flag : {JsAes(), JsRsa(true)}) {
        const CommandResult js =
            RunEsdkJs({"decrypt", keyring_flag, "--context=tenant=acme"}, bytes);
        ASSERT_EQ(js.exit_code, 0) << suite << " " << size << ": " << js.err;
        EXPECT_TRUE(js.out == plaintext) << suite << " " << size << " " << keyring_flag;
      }
      const CommandResult wrong = RunEsdkJs({"decrypt", JsAes(), "--context=tenant=globex"}, bytes);
      EXPECT_NE(wrong.exit_code, 0);
    }
  }
}

TEST_F(EsdkInteropTest, KmsdReadsTheJavaScriptSdksMessages) {
  for (const std::string suite : {"0478", "0578"}) {
    for (size_t size : kSizes) {
      const std::string plaintext = InteropPattern(size);
      const CommandResult js =
          RunEsdkJs({"encrypt", "--suite=" + suite, "--frame=4096", JsAes(), JsRsa(false),
                     "--context=tenant=acme", "--context=purpose=interop"},
                    plaintext);
      ASSERT_EQ(js.exit_code, 0) << js.err;
      for (bool by_rsa : {false, true}) {
        auto keyring = by_rsa ? Rsa(true) : Aes();
        esdk::DecryptOptions options;
        options.required_context = {{"tenant", "acme"}};
        auto read = Decrypt(*keyring, js.out, options);
        ASSERT_TRUE(read.has_value()) << suite << " " << size << ": " << read.error().message();
        EXPECT_TRUE(*read == plaintext) << suite << " " << size;
      }
      esdk::DecryptOptions other;
      other.required_context = {{"tenant", "globex"}};
      EXPECT_EQ(Decrypt(*Aes(), js.out, other).error().code(), Code::kInvalidCiphertext);
    }
  }
}

TEST_F(EsdkInteropTest, WrappingKeysOfEverySizeAndPaddingInterop) {
  const std::string plaintext = InteropPattern(10000);
  for (size_t bytes : {16, 24, 32}) {
    const CommandResult js = RunEsdkJs({"encrypt", JsAes(bytes)}, plaintext);
    ASSERT_EQ(js.exit_code, 0) << js.err;
    EXPECT_EQ(*Decrypt(*Aes(bytes), js.out), plaintext);
  }
  for (const auto& [name, padding] : std::vector<std::pair<std::string, esdk::RsaPadding>>{
           {"oaep-sha1", esdk::RsaPadding::kOaepSha1},
           {"oaep-sha256", esdk::RsaPadding::kOaepSha256},
           {"oaep-sha384", esdk::RsaPadding::kOaepSha384},
           {"oaep-sha512", esdk::RsaPadding::kOaepSha512},
           {"pkcs1", esdk::RsaPadding::kPkcs1}}) {
    // The SDK writes, kmsd reads (PKCS#1 v1.5 too: old messages).
    const CommandResult js = RunEsdkJs({"encrypt", JsRsa(false, name)}, plaintext);
    ASSERT_EQ(js.exit_code, 0) << name << ": " << js.err;
    auto read = Decrypt(*Rsa(true, padding), js.out);
    ASSERT_TRUE(read.has_value()) << name << ": " << read.error().message();
    EXPECT_EQ(*read, plaintext);
    if (padding == esdk::RsaPadding::kPkcs1) continue;  // kmsd does not write it
    // kmsd writes, the SDK reads.
    auto keyring = Rsa(false, padding);
    esdk::KeyringMaterials materials(*keyring);
    auto message = esdk::EncryptMessage(materials, {}, AsBytes(plaintext));
    ASSERT_TRUE(message.has_value());
    const CommandResult back =
        RunEsdkJs({"decrypt", JsRsa(true, name)}, std::string(message->begin(), message->end()));
    ASSERT_EQ(back.exit_code, 0) << name << ": " << back.err;
    EXPECT_TRUE(back.out == plaintext) << name;
  }
}

// Version 1 messages, written by the SDK under forbid-encrypt-allow-decrypt:
// read under allow-v1, refused under the default policy.
TEST_F(EsdkInteropTest, VersionOneMessagesOfEverySuiteAreReadOnlyUnderAllowV1) {
  const std::string plaintext = InteropPattern(9000);
  for (const std::string suite :
       {"0014", "0046", "0078", "0114", "0146", "0178", "0214", "0346", "0378"}) {
    const CommandResult js = RunEsdkJs(
        {"encrypt", "--policy=forbid-allow", "--suite=" + suite, JsAes(), "--context=v=1"},
        plaintext);
    ASSERT_EQ(js.exit_code, 0) << suite << ": " << js.err;
    ASSERT_EQ(static_cast<uint8_t>(js.out[0]), 1) << suite;  // version 1
    esdk::DecryptOptions allow;
    allow.policy = esdk::CommitmentPolicy::kRequireEncryptAllowDecrypt;
    auto read = Decrypt(*Aes(), js.out, allow);
    ASSERT_TRUE(read.has_value()) << suite << ": " << read.error().message();
    EXPECT_EQ(*read, plaintext) << suite;
    auto refused = Decrypt(*Aes(), js.out);
    ASSERT_FALSE(refused.has_value()) << suite;
    EXPECT_EQ(refused.error().code(), Code::kInvalidCiphertext);
    EXPECT_NE(refused.error().message().find("commitment policy"), std::string::npos);
  }
}

// The test vectors documented in docs/FORMATS.md decrypt with the SDK too.
TEST_F(EsdkInteropTest, TheJavaScriptSdkDecryptsTheDocumentedVectors) {
  const auto vectors = ReadVectors(FormatsPath());
  ASSERT_EQ(vectors.size(), 3u);
  for (const auto& [id, vector] : vectors) {
    const auto key = FromHex(vector.fields.at("key"));
    ASSERT_TRUE(key.has_value()) << id;
    const std::string key_file = Path("vector-key-" + id);
    std::ofstream(key_file, std::ios::binary)
        .write(reinterpret_cast<const char*>(key->data()),
               static_cast<std::streamsize>(key->size()));
    std::vector<std::string> args = {"decrypt",
                                     "--aes=" + vector.fields.at("keyring") + ":" + key_file};
    std::string_view context = vector.fields.at("context");
    while (!context.empty()) {
      const size_t comma = std::min(context.find(','), context.size());
      args.push_back("--context=" + std::string(context.substr(0, comma)));
      context.remove_prefix(std::min(comma + 1, context.size()));
    }
    const CommandResult js =
        RunEsdkJs(args, std::string(vector.message.begin(), vector.message.end()));
    ASSERT_EQ(js.exit_code, 0) << id << ": " << js.err;
    const auto plaintext = FromHex(vector.fields.at("plaintext"));
    EXPECT_TRUE(js.out == std::string(plaintext->begin(), plaintext->end())) << id;
  }
}

}  // namespace
}  // namespace kmsd::testing
