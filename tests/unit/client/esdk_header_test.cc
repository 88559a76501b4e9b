#include <gtest/gtest.h>

#include "client/esdk/header.h"

namespace kmsd::esdk {
namespace {

Bytes Hex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Header SampleHeader(uint16_t suite_id = kCommittingSuite) {
  Header header;
  header.suite = FindSuite(suite_id);
  header.message_id = Bytes(header.suite->message_version == 2 ? 32 : 16, 0xA5);
  header.context = {{"tenant", "acme"}, {"purpose", "orders"}};
  header.edks = {{"kmsd", Bytes{'a', '/', 'b'}, Bytes(40, 7)}, {"escrow", Bytes{1}, Bytes(256, 9)}};
  header.frame_length = 4096;
  header.commitment = Bytes(header.suite->suite_data_bytes, 0x3C);
  header.header_iv = Bytes(header.suite->message_version == 1 ? kIvBytes : 0, 0);
  header.tag.fill(0xEE);
  return header;
}

Bytes WholeHeader(const Header& header) {
  Bytes bytes = *SerializeHeaderBody(header);
  PutBytes(bytes, SerializeHeaderAuth(header));
  return bytes;
}

TEST(EsdkSuiteTest, KnowsTheElevenSuitesOfTheSdk) {
  for (uint16_t id :
       {0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378, 0x0478, 0x0578}) {
    const Suite* suite = FindSuite(id);
    ASSERT_NE(suite, nullptr) << id;
    EXPECT_EQ(suite->message_version, id >= 0x0478 ? 2 : 1);
    EXPECT_EQ(suite->key_bytes, (id & 0xFF) == 0x14 ? 16u : (id & 0xFF) == 0x46 ? 24u : 32u);
  }
  EXPECT_EQ(FindSuite(0x0479), nullptr);
  EXPECT_EQ(FindSuite(0x0000), nullptr);
  EXPECT_FALSE(
      CheckDecryptAllowed(*FindSuite(0x0178), CommitmentPolicy::kRequireEncryptRequireDecrypt)
          .ok());
  EXPECT_TRUE(
      CheckDecryptAllowed(*FindSuite(0x0178), CommitmentPolicy::kRequireEncryptAllowDecrypt).ok());
}

// The specification's example context (data-format/message-header.md).
TEST(EsdkHeaderTest, SerializesAContextAsTheSpecificationShows) {
  const EncryptionContext context = {
      {"0This", "is"}, {"1an", "encryption"}, {"2context", "example"}, {"3for", "Ciphertext"}};
  const Bytes bytes = *SerializeContext(context);
  EXPECT_EQ(bytes, Hex("0004"
                       "0005"
                       "30546869"
                       "73"
                       "0002"
                       "6973"
                       "0003"
                       "31616e"
                       "000a"
                       "656e6372797074696f6e"
                       "0008"
                       "32636f6e74657874"
                       "0007"
                       "6578616d706c65"
                       "0004"
                       "33666f72"
                       "000a"
                       "43697068657274657874"));
  EXPECT_TRUE(SerializeContext({})->empty());
  EXPECT_EQ(SerializeContext({{"k", std::string("\xff", 1)}}).error().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(SerializeContext({{"k", std::string(70000, 'v')}}).error().code(),
            Code::kInvalidArgument);
}

TEST(EsdkHeaderTest, ReadsWhatItWritesInBothVersions) {
  for (uint16_t id : {kCommittingSuite, kCommittingSignedSuite, uint16_t{0x0178}}) {
    const Header header = SampleHeader(id);
    const Bytes bytes = WholeHeader(header);
    auto parsed = ParseHeader(bytes, {});
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    ASSERT_TRUE(parsed->has_value());
    const Header& read = (*parsed)->header;
    EXPECT_EQ((*parsed)->size, bytes.size());
    EXPECT_EQ(read.suite, header.suite);
    EXPECT_EQ(read.message_id, header.message_id);
    EXPECT_EQ(read.context, header.context);
    EXPECT_EQ(read.edks, header.edks);
    EXPECT_EQ(read.frame_length, 4096u);
    EXPECT_EQ(read.commitment, header.commitment);
    EXPECT_EQ(read.tag, header.tag);
    EXPECT_EQ(read.body, *SerializeHeaderBody(header));
  }
}

TEST(EsdkHeaderTest, AskForMoreUntilTheWholeHeaderIsThere) {
  const Bytes bytes = WholeHeader(SampleHeader());
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto parsed = ParseHeader(std::span(bytes).first(cut), {});
    ASSERT_TRUE(parsed.has_value()) << cut << ": " << parsed.error().message();
    EXPECT_FALSE(parsed->has_value()) << cut;
  }
}

Code ParseCode(const Bytes& bytes, const HeaderLimits& limits = {}) {
  auto parsed = ParseHeader(bytes, limits);
  if (!parsed.has_value()) return parsed.error().code();
  return parsed->has_value() ? Code::kOk : Code::kUnavailable;  // kUnavailable: wants more
}

TEST(EsdkHeaderTest, RefusesHeadersOverTheLimitsBeforeReadingThem) {
  Header header = SampleHeader();
  header.edks.resize(17, header.edks[0]);
  Bytes bytes = WholeHeader(header);
  EXPECT_EQ(ParseCode(bytes), Code::kInvalidCiphertext);
  // The count alone is enough: the EDKs themselves need not have arrived.
  const size_t count_end = 1 + 2 + 32 + 2 + SerializeContext(header.context)->size() + 2;
  EXPECT_EQ(ParseCode(Bytes(bytes.begin(), bytes.begin() + count_end)), Code::kInvalidCiphertext);
  EXPECT_EQ(ParseCode(bytes, {.max_edks = 17, .max_header_bytes = 1 << 20}), Code::kOk);
  // Over the size limit, complete or not.
  EXPECT_EQ(ParseCode(bytes, {.max_edks = 17, .max_header_bytes = 500}), Code::kInvalidCiphertext);
  EXPECT_EQ(ParseCode(Bytes(bytes.begin(), bytes.begin() + 600),
                      {.max_edks = 17, .max_header_bytes = 500}),
            Code::kInvalidCiphertext);
  header = SampleHeader();
  header.frame_length = (64u << 20) + 1;
  EXPECT_EQ(ParseCode(WholeHeader(header)), Code::kInvalidCiphertext);
  header.frame_length = 0;
  EXPECT_EQ(ParseCode(WholeHeader(header)), Code::kInvalidCiphertext);
}

TEST(EsdkHeaderTest, RefusesMalformedFields) {
  const Bytes good = WholeHeader(SampleHeader());
  const auto with = [&](size_t at, uint8_t value) {
    Bytes bytes = good;
    bytes[at] = value;
    return bytes;
  };
  EXPECT_EQ(ParseCode(with(0, 3)), Code::kInvalidCiphertext);     // version
  EXPECT_EQ(ParseCode(with(2, 0x79)), Code::kInvalidCiphertext);  // suite 0x0479
  EXPECT_EQ(ParseCode(with(2, 0x78) /* 0x0478 */), Code::kOk);
  Bytes v1_suite_in_v2 = with(1, 0x01);  // 0x0178 under version 2
  EXPECT_EQ(ParseCode(v1_suite_in_v2), Code::kInvalidCiphertext);
  // A context whose length does not match its pairs, a key twice, no pairs.
  const size_t aad_length_at = 1 + 2 + 32;
  Bytes bytes = with(aad_length_at + 1, static_cast<uint8_t>(good[aad_length_at + 1] - 1));
  EXPECT_EQ(ParseCode(bytes), Code::kInvalidCiphertext);
  Header twice = SampleHeader();
  twice.context = {{"aa", "1"}, {"ab", "2"}};
  Bytes twice_bytes = WholeHeader(twice);
  // count (2) | 0002 "aa" | 0001 "1" | 0002 "ab" | 0001 "2": "ab" becomes "aa".
  const size_t aad_at = aad_length_at + 2;
  ASSERT_EQ(twice_bytes[aad_at + 12], 'b');
  twice_bytes[aad_at + 12] = 'a';
  EXPECT_EQ(ParseCode(twice_bytes), Code::kInvalidCiphertext);
  // No EDKs.
  Header none = SampleHeader();
  none.context.clear();
  Bytes none_bytes = WholeHeader(none);
  none_bytes[aad_length_at + 2 + 1] = 0;  // EDK count 2 -> 0
  EXPECT_EQ(ParseCode(none_bytes), Code::kInvalidCiphertext);
  // Version 1: reserved bytes and IV length.
  const Bytes v1 = WholeHeader(SampleHeader(0x0178));
  Bytes reserved = v1;
  const size_t body_size = SerializeHeaderBody(SampleHeader(0x0178))->size();
  reserved[body_size - 9] = 1;  // reserved (4) | IV length (1) | frame length (4)
  EXPECT_EQ(ParseCode(reserved), Code::kInvalidCiphertext);
  Bytes iv_length = v1;
  iv_length[body_size - 5] = 16;
  EXPECT_EQ(ParseCode(iv_length), Code::kInvalidCiphertext);
  EXPECT_EQ(ParseCode(v1), Code::kOk);
}

}  // namespace
}  // namespace kmsd::esdk
