// The test vectors of docs/FORMATS.md ("AWS Encryption SDK messages", Test
// vectors), read from the document itself so that it cannot drift from the
// code: each ```hex id=vector-X block decrypts to its documented plaintext and
// context, and a change to any byte of its message is refused.
#include "tests/support/esdk_vectors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"

namespace kmsd::esdk {
namespace {

using testing::FromHex;
using testing::ReadVectors;
using testing::Vector;

const std::map<std::string, Vector>& Vectors() {
  static const auto* const vectors =
      new std::map<std::string, Vector>(ReadVectors(testing::FormatsPath()));
  return *vectors;
}

EncryptionContext ParseContext(std::string_view text) {
  EncryptionContext context;
  while (!text.empty()) {
    const size_t comma = std::min(text.find(','), text.size());
    const std::string_view pair = text.substr(0, comma);
    const size_t equals = pair.find('=');
    EXPECT_NE(equals, std::string_view::npos) << pair;
    if (equals != std::string_view::npos) {
      context.emplace(pair.substr(0, equals), pair.substr(equals + 1));
    }
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  return context;
}

TEST(EsdkVectorsTest, TheDocumentHasVectorsAToC) {
  std::vector<std::string> ids;
  for (const auto& [id, vector] : Vectors()) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
}

class EsdkVectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto found = Vectors().find(GetParam());
    ASSERT_NE(found, Vectors().end()) << "no ```hex id=vector-" << GetParam() << " block";
    vector_ = &found->second;
    for (const char* field : {"suite", "frame-length", "keyring", "key", "context", "plaintext"}) {
      ASSERT_TRUE(vector_->fields.contains(field)) << GetParam() << " has no " << field;
    }
    const std::string& keyring = vector_->fields.at("keyring");
    const size_t slash = keyring.find('/');
    ASSERT_NE(slash, std::string::npos) << keyring;
    const auto key = FromHex(vector_->fields.at("key"));
    ASSERT_TRUE(key.has_value());
    auto created = RawAesKeyring::Create(keyring.substr(0, slash), keyring.substr(slash + 1),
                                         SecretBuffer::CopyOf(*key));
    ASSERT_TRUE(created.has_value()) << created.error().message();
    keyring_ = std::move(*created);
    materials_ = std::make_unique<KeyringMaterials>(*keyring_);
  }

  const Vector* vector_ = nullptr;
  std::unique_ptr<RawAesKeyring> keyring_;
  std::unique_ptr<KeyringMaterials> materials_;
};

TEST_P(EsdkVectorTest, DecryptsToItsPlaintextAndContext) {
  Header header;
  auto plaintext = DecryptMessage(*materials_, {}, vector_->message, &header);
  ASSERT_TRUE(plaintext.has_value()) << plaintext.error().message();
  EXPECT_EQ(*plaintext, FromHex(vector_->fields.at("plaintext")));

  char suite[8];
  std::snprintf(suite, sizeof suite, "%04x", header.suite->id);
  EXPECT_EQ(suite, vector_->fields.at("suite"));
  EXPECT_EQ(std::to_string(header.frame_length), vector_->fields.at("frame-length"));
  // The documented context is the caller's; a signed suite's message also
  // holds the verification key its encryptor added.
  EncryptionContext context = header.context;
  const bool has_public_key = context.erase(std::string(kPublicKeyContextKey)) == 1;
  EXPECT_EQ(has_public_key, header.suite->signature != Signature::kNone);
  EXPECT_EQ(context, ParseContext(vector_->fields.at("context")));
}

TEST_P(EsdkVectorTest, AnyChangedByteIsRefused) {
  ASSERT_FALSE(vector_->message.empty());
  for (size_t at = 0; at < vector_->message.size(); at += 7) {
    for (uint8_t change : {0x01, 0x80, 0xFF}) {
      Bytes tampered = vector_->message;
      tampered[at] ^= change;
      auto plaintext = DecryptMessage(*materials_, {}, tampered);
      ASSERT_FALSE(plaintext.has_value()) << "byte " << at << " ^ " << int{change};
      EXPECT_EQ(plaintext.error().code(), Code::kInvalidCiphertext)
          << "byte " << at << ": " << plaintext.error().message();
    }
  }
  // Cut short or extended, it is refused too.
  const Bytes& message = vector_->message;
  EXPECT_FALSE(DecryptMessage(*materials_, {}, std::span(message).first(message.size() - 1)));
  Bytes longer = message;
  longer.push_back(0);
  EXPECT_FALSE(DecryptMessage(*materials_, {}, longer));
}

INSTANTIATE_TEST_SUITE_P(Documented, EsdkVectorTest, ::testing::Values("a", "b", "c"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace kmsd::esdk
