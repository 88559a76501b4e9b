// SHA-256 one-shot and streaming, against FIPS 180-2's examples.
#include "protocol/sha256.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <thread>
#include <vector>

#include "protocol/hex.h"
#include "tests/support/temp_dir.h"

namespace kmsd {
namespace {

constexpr std::string_view kAbc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr std::string_view kEmpty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// One million 'a' (FIPS 180-2, appendix B.3).
constexpr std::string_view kMillionA =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Test, OneShotMatchesTheStandardsExamples) {
  EXPECT_EQ(Hex(Sha256Of(std::string_view("abc"))), kAbc);
  EXPECT_EQ(Hex(Sha256Of(std::string_view())), kEmpty);
  EXPECT_EQ(Hex(Sha256Of(std::string(1000000, 'a'))), kMillionA);
}

TEST(Sha256Test, StreamingInPiecesMatchesOneShotAndStartsOver) {
  Sha256 sha;
  const std::string text(1000000, 'a');
  for (int pass = 0; pass < 2; ++pass) {
    ASSERT_TRUE(sha.Start().ok());
    for (size_t at = 0; at < text.size(); at += 999) {
      const std::string_view piece = std::string_view(text).substr(at, 999);
      sha.Update(std::span(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()));
    }
    EXPECT_EQ(Hex(sha.Finish()), kMillionA) << "pass " << pass;
  }
}

TEST(Sha256Test, OneShotFromManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 2000; ++n) results[i] = Hex(Sha256Of(std::string_view("abc")));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& result : results) EXPECT_EQ(result, kAbc);
}

// An OpenSSL whose only provider is "null" has no SHA-256: Sha256Of stops the
// process rather than return a digest anyone could match.
TEST(Sha256DeathTest, NoDigestFromOpenSslStopsTheProcess) {
  testing::TempDir dir;
  const std::string config = dir / "openssl.cnf";
  {
    std::FILE* file = std::fopen(config.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs(
        "openssl_conf = init\n[init]\nproviders = providers\n[providers]\nnull = null\n"
        "[null]\nactivate = 1\n",
        file);
    std::fclose(file);
  }
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";  // a fresh process reads the config
  ::setenv("OPENSSL_CONF", config.c_str(), 1);
  EXPECT_DEATH(Sha256Of(std::string_view("abc")), "cannot compute SHA-256");
  ::unsetenv("OPENSSL_CONF");
}

}  // namespace
}  // namespace kmsd
