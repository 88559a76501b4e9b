#include "protocol/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace kmsd {
namespace {

std::span<const uint8_t> BytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string TextOf(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// RFC 4648 section 10.
TEST(Base64Test, EncodesTheRfcVectors) {
  EXPECT_EQ(Base64Encode(BytesOf("")), "");
  EXPECT_EQ(Base64Encode(BytesOf("f")), "Zg==");
  EXPECT_EQ(Base64Encode(BytesOf("fo")), "Zm8=");
  EXPECT_EQ(Base64Encode(BytesOf("foo")), "Zm9v");
  EXPECT_EQ(Base64Encode(BytesOf("foob")), "Zm9vYg==");
  EXPECT_EQ(Base64Encode(BytesOf("fooba")), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode(BytesOf("foobar")), "Zm9vYmFy");
  const uint8_t high[] = {0xfb, 0xff};
  EXPECT_EQ(Base64Encode(high), "+/8=");
}

TEST(Base64Test, DecodesWhatItEncodesWithItsPaddingCutOff) {
  for (std::string text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const auto decoded = Base64Decode(Base64Encode(BytesOf(text)));
    ASSERT_TRUE(decoded.has_value()) << text;
    EXPECT_EQ(TextOf(*decoded), text);
  }
  std::vector<uint8_t> every_byte(256);
  for (size_t i = 0; i < every_byte.size(); ++i) every_byte[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Base64Decode(Base64Encode(every_byte)), every_byte);
}

TEST(Base64Test, RefusesTextThatIsNotPaddedStandardBase64) {
  const std::vector<std::string_view> bad_texts = {
      "Zg", "Zg=", "Zm9", "Z===", "Zg==Zg==", "Zm9v\n", " Zm9v", "Zm-_", "Zm9v=", "=Zm9", "Zm=v",
      std::string_view("Zm\0v", 4)};
  for (std::string_view bad : bad_texts) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace kmsd
