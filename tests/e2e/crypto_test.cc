// End-to-end: crypto operations through a real kmsd on a real token.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(KmsdTest, CreateTenantProvisionsThreeKeysAndAliases) {
  Reply created = MustCall("tenant.create", "acme");
  EXPECT_EQ(created.result().Uint("keys").value(), 3u);
  EXPECT_EQ(created.result().Uint("aliases").value(), 3u);
  Reply keys = MustCall("key.list", "acme");
  auto list = keys.result().Array("keys").value();
  ASSERT_EQ(list.size(), 3u);
  std::vector<std::string> names;
  for (const auto& key : list)
    names.emplace_back(Fields::Of(key, "key").value().String("name").value());
  EXPECT_THAT(names, ::testing::ElementsAre("api-keys-key", "data-encryption-key", "secrets-key"));
  Value::Map args;
  args.emplace_back("key", "alias/data");
  Reply described = MustCall("key.describe", "acme", std::move(args));
  EXPECT_EQ(described.result().String("name").value(), "data-encryption-key");
}

TEST_F(KmsdTest, CreateTenantTwiceIsAlreadyExists) {
  MustCall("tenant.create", "acme");
  auto again = Call("tenant.create", "acme");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
}

TEST_F(KmsdTest, EncryptThenDecryptReturnsThePlaintext) {
  MustCall("tenant.create", "acme");
  Bytes ciphertext = Encrypt("acme", "alias/data", "attack at dawn", Context({{"app", "x"}}));
  EXPECT_EQ(ciphertext.size(), 14u + 50u);
  EXPECT_EQ(Decrypt("acme", ciphertext, Context({{"app", "x"}})).value(), "attack at dawn");
}

TEST_F(KmsdTest, RejectsCiphertextOfAnotherTenant) {
  MustCall("tenant.create", "acme");
  MustCall("tenant.create", "globex");
  Bytes ciphertext = Encrypt("acme", "alias/data", "acme secret");
  auto stolen = Decrypt("globex", ciphertext);
  ASSERT_FALSE(stolen);
  EXPECT_EQ(stolen.error().code(), Code::kInvalidCiphertext);
}

TEST_F(KmsdTest, ChangedContextFailsToDecrypt) {
  MustCall("tenant.create", "acme");
  Bytes ciphertext = Encrypt("acme", "alias/data", "secret", Context({{"app", "x"}}));
  const std::vector<std::vector<std::pair<std::string, std::string>>> wrong = {
      {{"app", "y"}}, {}, {{"app", "x"}, {"b", "c"}}, {{"APP", "x"}}};
  for (const auto& entries : wrong) {
    Value::Map context;
    for (const auto& [k, v] : entries) context.emplace_back(k, v);
    auto result = Decrypt("acme", ciphertext, std::move(context));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), Code::kInvalidCiphertext) << result.error();
  }
}

TEST_F(KmsdTest, EveryFlippedBitFailsToDecrypt) {
  MustCall("tenant.create", "acme");
  Bytes ciphertext = Encrypt("acme", "alias/data", "bits");
  for (size_t i = 0; i < ciphertext.size() * 8; ++i) {
    Bytes tampered = ciphertext;
    tampered[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    auto result = Decrypt("acme", tampered);
    ASSERT_FALSE(result) << "bit " << i;
    EXPECT_EQ(result.error().code(), Code::kInvalidCiphertext) << "bit " << i;
  }
}

TEST_F(KmsdTest, EveryTruncationFailsToDecrypt) {
  MustCall("tenant.create", "acme");
  Bytes ciphertext = Encrypt("acme", "alias/data", "truncate me");
  for (size_t n = 0; n < ciphertext.size(); ++n) {
    auto result = Decrypt("acme", Bytes(ciphertext.begin(), ciphertext.begin() + n));
    ASSERT_FALSE(result) << "length " << n;
    EXPECT_EQ(result.error().code(), Code::kInvalidCiphertext) << "length " << n;
  }
}

TEST_F(KmsdTest, RotationKeepsOldVersionsDecrypting) {
  MustCall("tenant.create", "acme");
  Bytes v1 = Encrypt("acme", "alias/data", "one");
  Value::Map args;
  args.emplace_back("key", "alias/data");
  Reply rotated = MustCall("key.rotate", "acme", std::move(args));
  EXPECT_EQ(rotated.result().Uint("latest_version").value(), 2u);
  Value::Map enc;
  enc.emplace_back("key", "alias/data");
  enc.emplace_back("plaintext", ToBytes("two"));
  Reply v2 = MustCall("encrypt", "acme", std::move(enc));
  EXPECT_EQ(v2.result().Uint("version").value(), 2u);
  Bytes v2_ciphertext(v2.result().Binary("ciphertext")->begin(),
                      v2.result().Binary("ciphertext")->end());
  EXPECT_EQ(Decrypt("acme", v1).value(), "one");
  EXPECT_EQ(Decrypt("acme", v2_ciphertext).value(), "two");
}

TEST_F(KmsdTest, EverythingSurvivesARestart) {
  MustCall("tenant.create", "acme");
  Value::Map key_args;
  key_args.emplace_back("name", "billing");
  MustCall("key.create", "acme", std::move(key_args));
  Value::Map alias_args;
  alias_args.emplace_back("alias", "alias/bill");
  alias_args.emplace_back("key", "billing");
  MustCall("alias.create", "acme", std::move(alias_args));
  Bytes ciphertext = Encrypt("acme", "alias/bill", "kept");
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();
  EXPECT_EQ(Decrypt("acme", ciphertext).value(), "kept");
  Value::Map describe;
  describe.emplace_back("key", "alias/bill");
  EXPECT_EQ(MustCall("key.describe", "acme", std::move(describe)).result().String("name").value(),
            "billing");
}

// SoftHSM2 rewrites token.object in place on every login; a kmsd killed inside
// that write leaves it empty, which would lose the token and every key on it.
// kmsd keeps a copy after each login and restores it before the module reads
// its tokens (pkcs11/softhsm_files.h): ciphertexts made before still decrypt.
TEST_F(KmsdTest, ATokenObjectEmptiedByACrashIsRestoredFromKmsdsCopy) {
  MustCall("tenant.create", "acme");
  Value::Map key_args;
  key_args.emplace_back("name", "billing");
  MustCall("key.create", "acme", std::move(key_args));
  Bytes ciphertext = Encrypt("acme", "billing", "kept");
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  std::vector<std::filesystem::path> token_objects;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(dir_ / "kmsd") / "tokens")) {
    const auto token_object = entry.path() / "token.object";
    ASSERT_TRUE(std::filesystem::exists(entry.path() / "token.object.kmsd-copy")) << entry.path();
    ASSERT_GT(std::filesystem::file_size(token_object), 0u);
    std::filesystem::resize_file(token_object, 0);  // what a kill after O_TRUNC leaves
    token_objects.push_back(token_object);
  }
  ASSERT_EQ(token_objects.size(), 1u);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();
  EXPECT_EQ(Decrypt("acme", ciphertext).value(), "kept");
  EXPECT_GT(std::filesystem::file_size(token_objects[0]), 0u);
  EXPECT_THAT(daemon_->ReadLog(),
              HasSubstr("restored " + token_objects[0].string() + " from kmsd's copy"));
}

}  // namespace
}  // namespace kmsd::testing
