// End-to-end: rewritten, foreign and misdirected ciphertexts through the real
// socket (DESIGN.md invariants 3 and 5). Bit flips and truncations are in
// crypto_test.cc; these rewrite the header's fields on purpose. Every one is
// INVALID_CIPHERTEXT with a message saying why, and changes nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/ciphertext.h"
#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kVersionOffset = 2 + kKeyIdSize;

Bytes WithVersion(Bytes ciphertext, uint32_t version) {
  for (int i = 0; i < 4; ++i) {
    ciphertext[kVersionOffset + i] = static_cast<uint8_t>(version >> (8 * (3 - i)));
  }
  return ciphertext;
}

class HostileCiphertextTest : public HostileDaemonTest {
 protected:
  void ExpectDecryptRejected(const Bytes& ciphertext, std::string_view substring,
                             Value::Map extra = {}) {
    Value::Map args = MapOf("ciphertext", ciphertext);
    for (auto& entry : extra) args.push_back(std::move(entry));
    ExpectRejected("decrypt", "acme", std::move(args), Code::kInvalidCiphertext, substring);
  }
};

TEST_F(HostileCiphertextTest, WrongMagicIsInvalidCiphertext) {
  const Bytes good = Encrypt("acme", "alias/data", "magic");
  for (auto magic : {std::pair<uint8_t, uint8_t>{'K', '1'}, {'k', '2'}, {0, 0}, {'1', 'k'}}) {
    Bytes bad = good;
    bad[0] = magic.first;
    bad[1] = magic.second;
    ExpectDecryptRejected(bad, "does not start with the kmsd v1 magic");
  }
}

TEST_F(HostileCiphertextTest, VersionZeroIsInvalidCiphertext) {
  ExpectDecryptRejected(WithVersion(Encrypt("acme", "alias/data", "v0"), 0), "key version 0");
}

TEST_F(HostileCiphertextTest, VersionTheKeyDoesNotHaveIsInvalidCiphertext) {
  // data-encryption-key has one version; billing has two.
  const Bytes data = Encrypt("acme", "alias/data", "one version");
  for (uint32_t version : {2u, 3u, 0x7fffffffu, 0xffffffffu}) {
    SCOPED_TRACE(::testing::Message() << "version " << version);
    ExpectDecryptRejected(WithVersion(data, version), "names a version its key does not have");
  }
  const Bytes billing = Encrypt("acme", "billing", "two versions");
  ExpectDecryptRejected(WithVersion(billing, 3), "names a version its key does not have");
  // A version the key has, but not the one that sealed it: the tag fails.
  ExpectDecryptRejected(WithVersion(billing, 1), "failed authentication");
}

TEST_F(HostileCiphertextTest, UnknownKeyIdIsInvalidCiphertext) {
  Bytes forged = Encrypt("acme", "alias/data", "forged id");
  for (size_t i = 2; i < 2 + kKeyIdSize; ++i) forged[i] = 0x42;
  ExpectDecryptRejected(forged, "not made by a key of this tenant");
}

TEST_F(HostileCiphertextTest, DecryptNamingAnotherKeyIsInvalidCiphertext) {
  const Bytes ciphertext = Encrypt("acme", "alias/data", "bound to data-encryption-key");
  for (const char* other : {"secrets-key", "alias/secrets", "billing", "alias/bill"}) {
    SCOPED_TRACE(other);
    ExpectDecryptRejected(ciphertext, std::string("made by another key than '") + other + "'",
                          MapOf("key", other));
  }
  // The right key, by name or alias, decrypts.
  for (const char* same : {"data-encryption-key", "alias/data"}) {
    Reply reply = MustCall("decrypt", "acme", MapOf("ciphertext", ciphertext, "key", same));
    EXPECT_EQ(ToString(reply.result().Binary("plaintext").value()), "bound to data-encryption-key");
  }
  // A key that does not exist is not found; a bad reference is a bad argument.
  ExpectRejected("decrypt", "acme", MapOf("ciphertext", ciphertext, "key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist");
  ExpectRejected("decrypt", "acme", MapOf("ciphertext", ciphertext, "key", "Nope"),
                 Code::kInvalidArgument, "is not valid");
}

TEST_F(HostileCiphertextTest, CiphertextOfAnotherTenantIsInvalidCiphertextEverywhere) {
  const Bytes acme = Encrypt("acme", "alias/data", "acme only");
  auto stolen = Call("decrypt", "globex", MapOf("ciphertext", acme));
  ASSERT_FALSE(stolen);
  EXPECT_EQ(stolen.error().code(), Code::kInvalidCiphertext);
  ExpectRejected("re-encrypt", "globex", MapOf("ciphertext", acme), Code::kInvalidCiphertext,
                 "not made by a key of this tenant");
  ExpectRejected("decrypt", "globex", MapOf("ciphertext", acme, "key", "alias/data"),
                 Code::kInvalidCiphertext, "not made by a key of this tenant");
  Value::Array items;
  items.emplace_back(MapOf("ciphertext", acme));
  Reply batch = MustCall("batch-decrypt", "globex", MapOf("items", std::move(items)));
  Fields only = Fields::Of(batch.result().Array("results").value()[0], "result").value();
  EXPECT_FALSE(only.OptionalBool("ok", true).value());
  EXPECT_FALSE(only.Has("plaintext"));
  EXPECT_EQ(only.Map("error")->String("code").value(), "INVALID_CIPHERTEXT");
  ExpectUnchanged();
}

TEST_F(HostileCiphertextTest, ReEncryptOfATamperedCiphertextIsInvalidCiphertext) {
  Bytes tampered = Encrypt("acme", "alias/data", "re-encrypt me");
  tampered.back() ^= 0x01;
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", tampered), Code::kInvalidCiphertext,
                 "failed authentication");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", tampered, "destination_key", "billing"),
                 Code::kInvalidCiphertext, "failed authentication");
  const Bytes good = Encrypt("acme", "alias/data", "re-encrypt me");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", good, "destination_key", "alias/nope"),
                 Code::kNotFound, "alias 'alias/nope' does not exist");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", good, "destination_key", "../x"),
                 Code::kInvalidArgument, "is not valid");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", WithVersion(good, 9)),
                 Code::kInvalidCiphertext, "names a version its key does not have");
}

TEST_F(HostileCiphertextTest, BatchDecryptWithOneTamperedItemFailsOnlyThatItem) {
  const std::vector<std::string> plaintexts = {"alpha", "bravo", "charlie", "delta"};
  Value::Array items;
  for (size_t i = 0; i < plaintexts.size(); ++i) {
    Bytes ciphertext = Encrypt("acme", i % 2 ? "billing" : "alias/data", plaintexts[i],
                               Context({{"i", std::to_string(i)}}));
    if (i == 2) ciphertext[kHeaderSize] ^= 0x80;  // first byte of the sealed body
    items.emplace_back(
        MapOf("ciphertext", std::move(ciphertext), "context", MapOf("i", std::to_string(i))));
  }
  Reply reply = MustCall("batch-decrypt", "acme", MapOf("items", std::move(items)));
  auto results = reply.result().Array("results").value();
  ASSERT_EQ(results.size(), plaintexts.size());
  for (size_t i = 0; i < results.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "item " << i);
    Fields result = Fields::Of(results[i], "result").value();
    if (i == 2) {
      EXPECT_FALSE(result.OptionalBool("ok", true).value());
      EXPECT_FALSE(result.Has("plaintext"));
      Fields error = result.Map("error").value();
      EXPECT_EQ(error.String("code").value(), "INVALID_CIPHERTEXT");
      EXPECT_THAT(std::string(error.String("message").value()), HasSubstr("failed authentication"));
      continue;
    }
    EXPECT_TRUE(result.OptionalBool("ok", false).value());
    EXPECT_EQ(ToString(result.Binary("plaintext").value()), plaintexts[i]);
    EXPECT_EQ(result.String("key_name").value(), i % 2 ? "billing" : "data-encryption-key");
  }
  ExpectUnchanged();
}

TEST_F(HostileCiphertextTest, EmptyAndHeaderOnlyCiphertextsAreInvalidCiphertext) {
  const Bytes good = Encrypt("acme", "alias/data", "");
  ASSERT_EQ(good.size(), kCiphertextOverhead);
  EXPECT_EQ(Decrypt("acme", good).value(), "");
  ExpectDecryptRejected(Bytes{}, "shorter than the format's minimum");
  ExpectDecryptRejected(Bytes(good.begin(), good.begin() + kHeaderSize),
                        "shorter than the format's minimum");
}

}  // namespace
}  // namespace kmsd::testing
