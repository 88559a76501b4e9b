// The v1 ciphertext format: header, parsing, AAD, key ids, context limits.
#include "protocol/ciphertext.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/support/test_helpers.h"

namespace kmsd {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

KeyId SampleKeyId() {
  KeyId id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(0xa0 + i);
  return id;
}

Iv SampleIv() {
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<uint8_t>(0x10 + i);
  return iv;
}

// header || `body_size` bytes of "GCM output" (at least the tag).
std::vector<uint8_t> SampleCiphertext(uint32_t version = 7, size_t body_size = kTagSize + 5) {
  std::vector<uint8_t> out = BuildHeader(SampleKeyId(), version, SampleIv());
  for (size_t i = 0; i < body_size; ++i) out.push_back(static_cast<uint8_t>(0xc0 ^ i));
  return out;
}

// --- BuildHeader / ParseCiphertext -------------------------------------------

TEST(CiphertextTest, HeaderHasTheDocumentedLayout) {
  const std::vector<uint8_t> header = BuildHeader(SampleKeyId(), 0x01020304, SampleIv());
  ASSERT_EQ(header.size(), kHeaderSize);
  ASSERT_EQ(kHeaderSize, 34u);
  EXPECT_EQ(header[0], 'k');
  EXPECT_EQ(header[1], '1');
  const KeyId id = SampleKeyId();
  EXPECT_TRUE(std::equal(id.begin(), id.end(), header.begin() + 2));
  EXPECT_EQ(header[18], 0x01);
  EXPECT_EQ(header[19], 0x02);
  EXPECT_EQ(header[20], 0x03);
  EXPECT_EQ(header[21], 0x04);
  const Iv iv = SampleIv();
  EXPECT_TRUE(std::equal(iv.begin(), iv.end(), header.begin() + 22));
}

TEST(CiphertextTest, ParseReturnsWhatBuildHeaderWrote) {
  const std::vector<uint8_t> ct = SampleCiphertext(0xfffffffe);
  auto parsed = ParseCiphertext(ct);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->key_id, SampleKeyId());
  EXPECT_EQ(parsed->version, 0xfffffffeu);
  EXPECT_EQ(parsed->iv, SampleIv());
  // Spans point into the input, not into a copy.
  EXPECT_EQ(parsed->bound_header.data(), ct.data());
  EXPECT_EQ(parsed->bound_header.size(), kBoundHeaderSize);
  EXPECT_EQ(parsed->encrypted_and_tag.data(), ct.data() + kHeaderSize);
  EXPECT_EQ(parsed->encrypted_and_tag.size(), ct.size() - kHeaderSize);
}

TEST(CiphertextTest, ParsesTheShortestCiphertextOfAnEmptyPlaintext) {
  const std::vector<uint8_t> ct = SampleCiphertext(1, kTagSize);
  ASSERT_EQ(ct.size(), kCiphertextOverhead);
  auto parsed = ParseCiphertext(ct);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->version, 1u);
  EXPECT_EQ(parsed->encrypted_and_tag.size(), kTagSize);
}

TEST(CiphertextTest, RejectsEveryTruncationBelowTheMinimum) {
  const std::vector<uint8_t> ct = SampleCiphertext(1, kTagSize);
  for (size_t n = 0; n < ct.size(); ++n) {
    auto parsed = ParseCiphertext(std::span(ct).first(n));
    EXPECT_EQ(CodeOf(parsed), Code::kInvalidCiphertext) << "length " << n;
  }
}

TEST(CiphertextTest, RejectsEveryChangeToTheMagic) {
  const std::vector<uint8_t> good = SampleCiphertext();
  for (size_t byte = 0; byte < 2; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> ct = good;
      ct[byte] ^= static_cast<uint8_t>(1 << bit);
      auto parsed = ParseCiphertext(ct);
      EXPECT_EQ(CodeOf(parsed), Code::kInvalidCiphertext) << "byte " << byte << " bit " << bit;
      if (!parsed) {
        EXPECT_THAT(parsed.error().message(), HasSubstr("magic"));
      }
    }
  }
}

TEST(CiphertextTest, RejectsVersionZero) {
  const std::vector<uint8_t> ct = SampleCiphertext(0);
  auto parsed = ParseCiphertext(ct);
  ASSERT_EQ(CodeOf(parsed), Code::kInvalidCiphertext);
  EXPECT_THAT(parsed.error().message(), HasSubstr("version 0"));
}

TEST(CiphertextTest, ParsesAnyBitFlipOutsideTheMagicIntoADifferentHeader) {
  // The parser only checks shape; authenticity is GCM's job. A flip in the key
  // id, version or IV must still show up in what the parser returns.
  const std::vector<uint8_t> good = SampleCiphertext();
  for (size_t byte = 2; byte < kHeaderSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> ct = good;
      ct[byte] ^= static_cast<uint8_t>(1 << bit);
      auto parsed = ParseCiphertext(ct);
      ASSERT_TRUE(parsed.has_value()) << "byte " << byte << " bit " << bit;
      const bool same =
          parsed->key_id == SampleKeyId() && parsed->version == 7 && parsed->iv == SampleIv();
      EXPECT_FALSE(same) << "byte " << byte << " bit " << bit;
    }
  }
}

// --- BuildAad ----------------------------------------------------------------

TEST(AadTest, HasTheDocumentedLayout) {
  const std::vector<uint8_t> header = BuildHeader(SampleKeyId(), 3, SampleIv());
  const auto bound = std::span(header).first(kBoundHeaderSize);
  const std::vector<uint8_t> aad = BuildAad(bound, "acme", {{"b", "2"}, {"a", ""}});
  std::vector<uint8_t> expected(bound.begin(), bound.end());
  const std::vector<uint8_t> rest = {0, 0, 0, 4, 'a', 'c', 'm', 'e',     // tenant
                                     0, 0, 0, 2,                         // entry count
                                     0, 0, 0, 1, 'a', 0,   0,   0,   0,  // "a" -> ""
                                     0, 0, 0, 1, 'b', 0,   0,   0,   1, '2' /* "b" -> "2" */};
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_THAT(aad, ElementsAreArray(expected));
}

TEST(AadTest, DoesNotDependOnContextInsertionOrder) {
  const std::vector<uint8_t> header = BuildHeader(SampleKeyId(), 1, SampleIv());
  const auto bound = std::span(header).first(kBoundHeaderSize);
  EncryptionContext forward, backward;
  const std::vector<std::pair<std::string, std::string>> entries = {
      {"zeta", "1"}, {"alpha", "2"}, {"mid", "3"}, {"Alpha", "4"}, {"\xff", "5"}};
  for (const auto& e : entries) forward.insert(e);
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) backward.insert(*it);
  EXPECT_EQ(BuildAad(bound, "t", forward), BuildAad(bound, "t", backward));
}

TEST(AadTest, ChangesWithEveryInput) {
  const KeyId id = SampleKeyId();
  auto aad = [](const KeyId& key_id, uint32_t version, std::string_view tenant,
                const EncryptionContext& context) {
    const std::vector<uint8_t> header = BuildHeader(key_id, version, SampleIv());
    return BuildAad(std::span(header).first(kBoundHeaderSize), tenant, context);
  };
  const EncryptionContext context = {{"purpose", "billing"}, {"user", "42"}};
  std::set<std::vector<uint8_t>> seen;
  auto add = [&](std::vector<uint8_t> v, const std::string& what) {
    EXPECT_TRUE(seen.insert(std::move(v)).second) << what << " gives the same AAD";
  };
  add(aad(id, 1, "acme", context), "base");
  for (size_t byte = 0; byte < id.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      KeyId flipped = id;
      flipped[byte] ^= static_cast<uint8_t>(1 << bit);
      add(aad(flipped, 1, "acme", context), "key id flip");
    }
  }
  add(aad(id, 2, "acme", context), "version 2");
  add(aad(id, 0x01000001, "acme", context), "version high byte");
  add(aad(id, 1, "acmf", context), "tenant");
  add(aad(id, 1, "acm", context), "shorter tenant");
  add(aad(id, 1, "", context), "no tenant");
  add(aad(id, 1, "acme", {}), "no context");
  add(aad(id, 1, "acme", {{"purpose", "billing"}}), "one entry fewer");
  add(aad(id, 1, "acme", {{"purpose", "billing"}, {"user", "43"}}), "value");
  add(aad(id, 1, "acme", {{"purpose", "billing"}, {"users", "42"}}), "key");
  add(aad(id, 1, "acme", {{"purpose", "billing"}, {"user", "42"}, {"x", ""}}), "extra entry");
}

TEST(AadTest, LengthPrefixesKeepFieldBoundariesUnambiguous) {
  const std::vector<uint8_t> header = BuildHeader(SampleKeyId(), 1, SampleIv());
  const auto bound = std::span(header).first(kBoundHeaderSize);
  EXPECT_NE(BuildAad(bound, "t", {{"ab", "c"}}), BuildAad(bound, "t", {{"a", "bc"}}));
  EXPECT_NE(BuildAad(bound, "ta", {{"b", ""}}), BuildAad(bound, "t", {{"ab", ""}}));
  EXPECT_NE(BuildAad(bound, "t", {{"a", ""}, {"b", ""}}), BuildAad(bound, "t", {{"a", "b"}}));
}

// --- Key ids -----------------------------------------------------------------

TEST(KeyIdHexTest, RoundTripsThroughLowerCaseHex) {
  const KeyId id = SampleKeyId();
  const std::string hex = KeyIdToHex(id);
  EXPECT_EQ(hex, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  auto back = KeyIdFromHex(hex);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, id);
  KeyId extremes{};
  extremes[0] = 0xff;
  extremes[15] = 0x0f;
  EXPECT_EQ(KeyIdToHex(extremes), "ff00000000000000000000000000000f");
  EXPECT_EQ(*KeyIdFromHex(KeyIdToHex(extremes)), extremes);
}

TEST(KeyIdHexTest, RejectsWrongLengths) {
  const std::string hex = KeyIdToHex(SampleKeyId());
  for (size_t n = 0; n < hex.size(); ++n) {
    EXPECT_EQ(CodeOf(KeyIdFromHex(hex.substr(0, n))), Code::kInvalidArgument) << n;
  }
  EXPECT_EQ(CodeOf(KeyIdFromHex(hex + "0")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(KeyIdFromHex(hex + "00")), Code::kInvalidArgument);
}

TEST(KeyIdHexTest, RejectsNonHexDigitsInEveryPosition) {
  const std::string hex = KeyIdToHex(SampleKeyId());
  for (size_t i = 0; i < hex.size(); ++i) {
    for (char bad : {'g', 'G', 'x', ' ', '\0', '-', '/', ':', '@', '`', '\xff'}) {
      std::string s = hex;
      s[i] = bad;
      auto r = KeyIdFromHex(s);
      EXPECT_EQ(CodeOf(r), Code::kInvalidArgument) << "position " << i << " char " << int(bad);
    }
  }
}

TEST(KeyIdHexTest, RejectsUpperCaseHexBecauseKeyIdsHaveOneSpelling) {
  EXPECT_EQ(CodeOf(KeyIdFromHex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")), Code::kInvalidArgument);
}

// --- ValidateEncryptionContext -----------------------------------------------

TEST(EncryptionContextTest, AcceptsContextsAtTheLimits) {
  EXPECT_TRUE(ValidateEncryptionContext({}).ok());
  EncryptionContext full;
  for (int i = 0; i < 64; ++i) full["k" + std::to_string(i)] = "";
  EXPECT_TRUE(ValidateEncryptionContext(full).ok());
  EXPECT_TRUE(ValidateEncryptionContext({{std::string(256, 'k'), std::string(4096, 'v')}}).ok());
  EXPECT_TRUE(ValidateEncryptionContext({{"k", ""}}).ok());
  EXPECT_TRUE(ValidateEncryptionContext({{std::string("\0", 1), std::string("\0\xff", 2)}}).ok());
}

TEST(EncryptionContextTest, RejectsMoreThanSixtyFourEntries) {
  EncryptionContext context;
  for (int i = 0; i < 65; ++i) context["k" + std::to_string(i)] = "v";
  Status s = ValidateEncryptionContext(context);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("64 entries"));
}

TEST(EncryptionContextTest, RejectsEmptyAndOverlongKeys) {
  EXPECT_EQ(ValidateEncryptionContext({{"", "v"}}).code(), Code::kInvalidArgument);
  Status s = ValidateEncryptionContext({{std::string(257, 'k'), "v"}});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("1-256 bytes"));
}

TEST(EncryptionContextTest, RejectsOverlongValues) {
  Status s = ValidateEncryptionContext({{"a", "ok"}, {"k", std::string(4097, 'v')}});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("4096 bytes"));
}

}  // namespace
}  // namespace kmsd
