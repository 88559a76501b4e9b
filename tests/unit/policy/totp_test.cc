// HOTP/TOTP against the RFCs' vectors and against Debian's oathtool, base32
// and the otpauth:// URI.
#include "policy/totp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/daemon_process.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

// RFC 4226 Appendix D and RFC 6238 Appendix B (SHA1) seed.
constexpr std::string_view kRfcSeed = "12345678901234567890";

std::span<const uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string Text(const SecretBuffer& buffer) {
  return std::string(reinterpret_cast<const char*>(buffer.RevealData()), buffer.size());
}

void ExpectDenied(const Result<uint64_t>& result, std::string_view message) {
  ASSERT_FALSE(result.has_value()) << "accepted step " << *result;
  EXPECT_EQ(result.error().code(), Code::kAccessDenied);
  EXPECT_EQ(result.error().message(), message);
}

constexpr std::string_view kNotValid = "the TOTP code is not valid";
constexpr std::string_view kAlreadyUsed = "the TOTP code was already used";

TEST(HotpTest, Rfc4226AppendixDVectors) {
  const std::array<std::string_view, 10> expected = {"755224", "287082", "359152", "969429",
                                                     "338314", "254676", "287922", "162583",
                                                     "399871", "520489"};
  for (uint64_t counter = 0; counter < expected.size(); ++counter) {
    EXPECT_EQ(HotpCode(Bytes(kRfcSeed), counter), expected[counter]) << "counter " << counter;
  }
}

TEST(HotpTest, CodesAreZeroPaddedToSixDigits) {
  // RFC 6238's vector at 1234567890 is 89005924: its last six digits start with zeros.
  EXPECT_EQ(HotpCode(Bytes(kRfcSeed), 1234567890 / 30), "005924");
}

TEST(HotpTest, AnEmptySeedStillGivesACode) {
  // HMAC-SHA1 with an empty key (computed with Python's hmac module).
  EXPECT_EQ(HotpCode(std::span<const uint8_t>(), 0), "328482");
}

struct TotpVector {
  int64_t time;
  std::string_view code;
};
// RFC 6238 Appendix B (SHA1), the last 6 of its 8 digits.
constexpr std::array<TotpVector, 6> kTotpVectors = {{{59, "287082"},
                                                     {1111111109, "081804"},
                                                     {1111111111, "050471"},
                                                     {1234567890, "005924"},
                                                     {2000000000, "279037"},
                                                     {20000000000, "353130"}}};

TEST(TotpTest, Rfc6238AppendixBVectors) {
  for (const TotpVector& v : kTotpVectors) {
    const auto step = static_cast<uint64_t>(v.time / kTotpStepSeconds);
    EXPECT_EQ(HotpCode(Bytes(kRfcSeed), step), v.code) << "time " << v.time;
    Result<uint64_t> verified = VerifyTotp(Bytes(kRfcSeed), v.code, v.time, std::nullopt);
    ASSERT_TRUE(verified.has_value()) << "time " << v.time << ": " << verified.error();
    EXPECT_EQ(*verified, step) << "time " << v.time;
  }
}

TEST(TotpTest, AcceptsOneStepEitherSideNotTwo) {
  const int64_t now = 1111111111;  // step 37037037
  const uint64_t step = now / kTotpStepSeconds;
  for (int delta : {-1, 0, 1}) {
    const std::string code = HotpCode(Bytes(kRfcSeed), step + delta);
    Result<uint64_t> verified = VerifyTotp(Bytes(kRfcSeed), code, now, std::nullopt);
    ASSERT_TRUE(verified.has_value()) << "delta " << delta << ": " << verified.error();
    EXPECT_EQ(*verified, step + delta);
  }
  for (int delta : {-2, 2, -3, 3}) {
    const std::string code = HotpCode(Bytes(kRfcSeed), step + delta);
    ExpectDenied(VerifyTotp(Bytes(kRfcSeed), code, now, std::nullopt), kNotValid);
  }
}

TEST(TotpTest, WindowFollowsStepBoundaries) {
  // 59 is the last second of step 1: step 0, 1 and 2 are in the window, 3 is not.
  EXPECT_EQ(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 0), 59, std::nullopt), 0u);
  EXPECT_EQ(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 2), 59, std::nullopt), 2u);
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 3), 59, std::nullopt),
               kNotValid);
  // At 60 (step 2) step 0 has left the window.
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 0), 60, std::nullopt),
               kNotValid);
  // At time 0 there is no step -1; step 0 and 1 are accepted.
  EXPECT_EQ(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 0), 0, std::nullopt), 0u);
  EXPECT_EQ(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), 1), 0, std::nullopt), 1u);
}

TEST(TotpTest, RefusesReplayOfTheSameOrAnEarlierStep) {
  const int64_t now = 2000000000;
  const uint64_t step = now / kTotpStepSeconds;
  const std::string code = HotpCode(Bytes(kRfcSeed), step);
  Result<uint64_t> first = VerifyTotp(Bytes(kRfcSeed), code, now, std::nullopt);
  ASSERT_TRUE(first.has_value()) << first.error();
  ASSERT_EQ(*first, step);
  // The same code again, in the same step and in the next one.
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), code, now, *first), kAlreadyUsed);
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), code, now + kTotpStepSeconds, *first), kAlreadyUsed);
  // The previous step's code, still within the window.
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), step - 1), now, *first),
               kAlreadyUsed);
  // The next step's code is accepted.
  Result<uint64_t> later =
      VerifyTotp(Bytes(kRfcSeed), HotpCode(Bytes(kRfcSeed), step + 1), now, *first);
  ASSERT_TRUE(later.has_value()) << later.error();
  EXPECT_EQ(*later, step + 1);
  // A wrong code stays "not valid" whatever was used before.
  const std::string wrong = code == "000000" ? "000001" : "000000";
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), wrong, now, *first), kNotValid);
}

TEST(TotpTest, RefusesMalformedCodes) {
  const int64_t now = 1111111111;
  const std::string good = HotpCode(Bytes(kRfcSeed), now / kTotpStepSeconds);
  ASSERT_EQ(good, "050471");
  const std::string nul_inside = std::string("05") + '\0' + "471";
  const std::string nul_last = std::string("05047") + '\0';
  const std::vector<std::string_view> malformed = {
      "",       "05047",   "0504711", "50471",        "a50471",   "05047a",
      "ABCDEF", "050 471", " 050471", "050471 ",      "05047\n",  "+50471",
      "-50471", "0x1234",  "５04711", "050471050471", nul_inside, nul_last};
  for (std::string_view code : malformed) {
    ExpectDenied(VerifyTotp(Bytes(kRfcSeed), code, now, std::nullopt), kNotValid);
  }
}

TEST(TotpTest, ADifferentSeedsCodeIsRefused) {
  const std::string other = "abcdefghijabcdefghij";
  const int64_t now = 1700000000;
  const std::string code = HotpCode(Bytes(other), now / kTotpStepSeconds);
  ExpectDenied(VerifyTotp(Bytes(kRfcSeed), code, now, std::nullopt), kNotValid);
}

TEST(Base32Test, Rfc4648VectorsWithoutPadding) {
  const std::array<std::pair<std::string_view, std::string_view>, 7> vectors = {{
      {"", ""},
      {"f", "MY"},
      {"fo", "MZXQ"},
      {"foo", "MZXW6"},
      {"foob", "MZXW6YQ"},
      {"fooba", "MZXW6YTB"},
      {"foobar", "MZXW6YTBOI"},
  }};
  for (const auto& [in, out] : vectors) {
    EXPECT_EQ(Text(Base32Encode(Bytes(in))), out) << "'" << in << "'";
  }
}

TEST(Base32Test, EncodesTheRfcSeedAndEveryByteValue) {
  EXPECT_EQ(Text(Base32Encode(Bytes(kRfcSeed))), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  const std::array<uint8_t, 5> ones = {0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(Text(Base32Encode(ones)), "77777777");
  const std::array<uint8_t, 5> zeros = {};
  EXPECT_EQ(Text(Base32Encode(zeros)), "AAAAAAAA");
  EXPECT_EQ(Base32Encode(std::span<const uint8_t>()).size(), 0u);
  EXPECT_EQ(Base32Encode(std::vector<uint8_t>(kTotpSeedBytes, 7)).size(), 32u);
}

TEST(OtpauthUriTest, ExactUriForAKnownSeed) {
  EXPECT_EQ(Text(OtpauthUri(Bytes(kRfcSeed), "kmsd", "acme/app")),
            "otpauth://totp/kmsd:acme%2Fapp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            "&issuer=kmsd&algorithm=SHA1&digits=6&period=30");
}

TEST(OtpauthUriTest, PercentEncodesAllButUnreservedCharacters) {
  EXPECT_EQ(Text(OtpauthUri(Bytes("foobar"), "My Co:1", "a b/c-d._~@x?&=%é")),
            "otpauth://totp/My%20Co%3A1:a%20b%2Fc-d._~%40x%3F%26%3D%25%C3%A9"
            "?secret=MZXW6YTBOI&issuer=My%20Co%3A1&algorithm=SHA1&digits=6&period=30");
}

// --- Against Debian's oathtool (oath-toolkit): installed by scripts/install-deps.

std::string FindOathtool() {
  const char* path = std::getenv("PATH");
  const std::string dirs = path != nullptr && *path != '\0' ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/oathtool";
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// Not a skip: CI installs oathtool, and these are the only codes from a client
// kmsd did not write.
constexpr std::string_view kNoOathtool =
    "oathtool is not installed (not found in $PATH): run scripts/install-deps "
    "or apt-get install -y oathtool";

// The output of `oathtool args -`, the base32 key on its standard input (not
// on its command line); fails the test when oathtool fails.
std::string Oathtool(const std::string& oathtool, const std::vector<std::string>& args,
                     const std::string& base32_key) {
  std::vector<std::string> argv = {oathtool};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("-");
  kmsd::testing::CommandResult result = kmsd::testing::RunCommand(argv, base32_key + "\n");
  EXPECT_EQ(result.exit_code, 0) << oathtool << " failed: " << result.err;
  std::string out = result.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::vector<uint8_t> RandomSeed() {
  std::vector<uint8_t> seed(kTotpSeedBytes);
  EXPECT_EQ(RAND_bytes(seed.data(), static_cast<int>(seed.size())), 1);
  return seed;
}

std::string HexOf(std::span<const uint8_t> bytes) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0f]);
  }
  return out;
}

TEST(TotpTest, OathtoolReadsOurBase32AsTheSeed) {
  const std::string tool = FindOathtool();
  ASSERT_FALSE(tool.empty()) << kNoOathtool;
  const std::vector<uint8_t> seed = RandomSeed();
  const std::string key = Text(Base32Encode(seed));
  const std::string verbose = Oathtool(tool, {"-v", "-b", "-c", "0"}, key);
  EXPECT_THAT(verbose, HasSubstr("Hex secret: " + HexOf(seed) + "\n"));
}

TEST(TotpTest, AcceptsOathtoolCodesForARandomSeed) {
  const std::string tool = FindOathtool();
  ASSERT_FALSE(tool.empty()) << kNoOathtool;
  const std::vector<uint8_t> seed = RandomSeed();
  const std::string key = Text(Base32Encode(seed));
  for (int64_t now : {int64_t{59}, int64_t{1111111109}, int64_t{1700000015}, int64_t{2000000000},
                      int64_t{4102444799}}) {
    const std::string code = Oathtool(tool, {"--totp", "-b", "-N", "@" + std::to_string(now)}, key);
    ASSERT_EQ(code.size(), 6u) << "oathtool at @" << now << " printed '" << code << "'";
    const uint64_t step = static_cast<uint64_t>(now / kTotpStepSeconds);
    EXPECT_EQ(HotpCode(seed, step), code) << "at @" << now;
    Result<uint64_t> verified = VerifyTotp(seed, code, now, std::nullopt);
    ASSERT_TRUE(verified.has_value()) << "at @" << now << ": " << verified.error();
    EXPECT_EQ(*verified, step);
    // And 30 s later, as the previous step's code.
    EXPECT_EQ(VerifyTotp(seed, code, now + kTotpStepSeconds, std::nullopt), step) << "@" << now;
  }
}

TEST(HotpTest, MatchesOathtoolForARandomSeed) {
  const std::string tool = FindOathtool();
  ASSERT_FALSE(tool.empty()) << kNoOathtool;
  const std::vector<uint8_t> seed = RandomSeed();
  const std::string key = Text(Base32Encode(seed));
  for (uint64_t counter : {0ull, 1ull, 2ull, 9ull, 1000ull, 123456789ull}) {
    // `-c COUNTER`: a bare second argument would be taken as a code to validate.
    const std::string code = Oathtool(tool, {"-b", "-c", std::to_string(counter)}, key);
    EXPECT_EQ(HotpCode(seed, counter), code) << "counter " << counter;
  }
}

TEST(HotpTest, MatchesOathtoolForTheRfcSeed) {
  const std::string tool = FindOathtool();
  ASSERT_FALSE(tool.empty()) << kNoOathtool;
  const std::string key = Text(Base32Encode(Bytes(kRfcSeed)));
  EXPECT_EQ(Oathtool(tool, {"-b", "-c", "5"}, key), "254676");
  EXPECT_EQ(Oathtool(tool, {"--totp", "-b", "-N", "@1111111109"}, key), "081804");
}

}  // namespace
}  // namespace kmsd
