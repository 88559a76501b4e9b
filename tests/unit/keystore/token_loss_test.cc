// KeyHierarchy over a token that goes away and comes back (pkcs11/token.h,
// "Losing the token"): the faulty_pkcs11 wrapper module in place of SoftHSM2.
// Requests during the fault are TOKEN_UNAVAILABLE and change nothing; after
// it, cached unwrapped versions are unwrapped again and everything made
// before decrypts.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/unit/keystore/hierarchy_fixture.h"

namespace kmsd {
namespace {

using namespace hierarchy_testing;

class TokenLossHierarchyTest : public HierarchyTest {
 protected:
  void SetUp() override {
    setenv("KMSD_FAULTY_CONTROL", control_.c_str(), 1);
    auto module = pkcs11::Module::Load(FAULTY_PKCS11_MODULE);
    ASSERT_TRUE(module.has_value()) << module.error();
    module_ = *module;
    auto token = pkcs11::Token::Open(module_, softhsm_.label(),
                                     SecretBuffer::CopyOf(softhsm_.user_pin()), 4);
    ASSERT_TRUE(token.has_value()) << token.error();
    token_ = std::move(*token);
    ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  }
  void TearDown() override { unsetenv("KMSD_FAULTY_CONTROL"); }

  void FaultOn() { std::ofstream(control_) << "DEVICE_REMOVED\n"; }
  void FaultOff() { std::filesystem::remove(control_); }

  static std::span<const uint8_t> Bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  std::string control_ = dir_ / "fault";
};

TEST_F(TokenLossHierarchyTest, VersionsAreUnwrappedAgainAfterTheTokenCameBack) {
  ASSERT_TRUE(hierarchy_->CreateTenant("acme").has_value());
  auto before = hierarchy_->Encrypt("acme", "alias/data", Bytes("before"), {});
  ASSERT_TRUE(before.has_value()) << before.error();
  auto described = hierarchy_->DescribeKey("acme", "alias/data");
  ASSERT_TRUE(described.has_value());

  FaultOn();
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/data", Bytes("during"), {})),
            Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(hierarchy_->Decrypt("acme", before->ciphertext, {}, std::nullopt)),
            Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/data")), Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "during", "", std::nullopt)),
            Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(hierarchy_->CreateTenant("globex")), Code::kTokenUnavailable);
  FaultOff();

  std::this_thread::sleep_for(pkcs11::Token::kReconnectInterval);
  ASSERT_TRUE(token_->Ping().ok());  // reconnects, as kmsd's health does
  auto opened = hierarchy_->Decrypt("acme", before->ciphertext, {}, std::nullopt);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(opened->plaintext.RevealData()),
                        opened->plaintext.size()),
            "before");
  EXPECT_EQ(token_->generation(), 1u);
  auto after = hierarchy_->Encrypt("acme", "alias/data", Bytes("after"), {});
  ASSERT_TRUE(after.has_value()) << after.error();
  // Nothing the failed requests tried is there.
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/data")->latest_version,
            described->latest_version);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "during")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeTenant("globex")), Code::kNotFound);
  EXPECT_TRUE(hierarchy_->RotateKey("acme", "alias/data").has_value());
}

}  // namespace
}  // namespace kmsd
