// Re-wrapping a message's header: new EDKs, same body, and never a header
// that did not authenticate before.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"
#include "client/esdk/rewrap.h"

namespace kmsd::esdk {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<RawAesKeyring> AesKeyring(uint8_t fill, std::string name) {
  return std::move(
      *RawAesKeyring::Create("escrow", std::move(name), SecretBuffer::CopyOf(Bytes(32, fill))));
}

struct EsdkRewrapTest : ::testing::Test {
  std::unique_ptr<RawAesKeyring> old_keyring = AesKeyring(0x11, "old");
  std::unique_ptr<RawAesKeyring> new_keyring = AesKeyring(0x22, "new");
  KeyringMaterials old_materials{*old_keyring};
  KeyringMaterials new_materials{*new_keyring};
  Bytes plaintext = Bytes(1000, 0x5a);

  Bytes Encrypt(uint16_t suite = kCommittingSuite) {
    return *EncryptMessage(old_materials,
                           {.suite_id = suite,
                            .frame_length = 64,
                            .context = {{"tenant", "acme"}},
                            .plaintext_bytes = std::nullopt},
                           plaintext);
  }
  static ParsedHeader Parse(const Bytes& message) {
    return std::move(**ParseHeader(message, HeaderLimits{}));
  }
  SecretBuffer DataKeyOf(const Header& header) {
    auto materials = old_materials.DecryptMaterials(*header.suite, header.context, header.edks);
    EXPECT_TRUE(materials.has_value());
    return std::move(materials->data_key);
  }
  // The data key's EDK under the new keyring.
  std::vector<EncryptedDataKey> NewEdks(const Header& header, const SecretBuffer& data_key) {
    EncryptionMaterials materials{.suite = header.suite,
                                  .context = header.context,
                                  .data_key = SecretBuffer::CopyOf(data_key.RevealSpan()),
                                  .edks = {},
                                  .signer = std::nullopt};
    EXPECT_TRUE(new_keyring->OnEncrypt(materials).ok());
    return materials.edks;
  }
};

TEST_F(EsdkRewrapTest, TheNewHeaderAndTheOldBodyDecryptUnderTheNewKeyOnly) {
  const Bytes message = Encrypt();
  const ParsedHeader parsed = Parse(message);
  const SecretBuffer data_key = DataKeyOf(parsed.header);
  auto header =
      RewrapHeader(parsed.header, data_key.RevealSpan(), NewEdks(parsed.header, data_key));
  ASSERT_TRUE(header.has_value()) << header.error().ToString();
  Bytes rewrapped = *header;
  rewrapped.insert(rewrapped.end(), message.begin() + static_cast<ptrdiff_t>(parsed.size),
                   message.end());
  EXPECT_EQ(DecryptMessage(new_materials, {}, rewrapped), plaintext);
  EXPECT_EQ(DecryptMessage(old_materials, {}, rewrapped).error().code(), Code::kInvalidCiphertext);
  const ParsedHeader again = Parse(rewrapped);
  EXPECT_EQ(again.header.message_id, parsed.header.message_id);
  EXPECT_EQ(again.header.context, parsed.header.context);
  ASSERT_EQ(again.header.edks.size(), 1u);
  EXPECT_EQ(again.header.edks[0].provider_id, "escrow");
}

TEST_F(EsdkRewrapTest, ATamperedHeaderOrAWrongDataKeyIsNeverReauthenticated) {
  const Bytes message = Encrypt();
  ParsedHeader parsed = Parse(message);
  const SecretBuffer data_key = DataKeyOf(parsed.header);
  const auto edks = NewEdks(parsed.header, data_key);
  // The context, as the header body holds it, changed by someone.
  ParsedHeader tampered = parsed;
  const auto at = std::search(tampered.header.body.begin(), tampered.header.body.end(),
                              std::begin("acme"), std::end("acme") - 1);
  ASSERT_NE(at, tampered.header.body.end());
  *at = 'X';
  tampered.header.context["tenant"] = "Xcme";
  auto refused = RewrapHeader(tampered.header, data_key.RevealSpan(), edks);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kInvalidCiphertext);
  EXPECT_THAT(refused.error().message(), HasSubstr("does not authenticate"));
  const Bytes wrong_key(32, 0x33);
  auto wrong = RewrapHeader(parsed.header, wrong_key, edks);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), Code::kInvalidCiphertext);
  EXPECT_THAT(wrong.error().message(), HasSubstr("commitment"));
  EXPECT_EQ(RewrapHeader(parsed.header, data_key.RevealSpan(), {}).error().code(),
            Code::kInvalidArgument);
}

TEST_F(EsdkRewrapTest, ASignedMessageCannotBeRewrapped) {
  const Bytes message = Encrypt(kCommittingSignedSuite);
  const ParsedHeader parsed = Parse(message);
  const SecretBuffer data_key = DataKeyOf(parsed.header);
  auto refused =
      RewrapHeader(parsed.header, data_key.RevealSpan(), NewEdks(parsed.header, data_key));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(refused.error().message(), HasSubstr("signature covers the header"));
}

}  // namespace
}  // namespace kmsd::esdk
