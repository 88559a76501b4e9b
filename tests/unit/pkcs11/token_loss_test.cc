// The token going away and coming back (pkcs11/token.h, "Losing the token"):
// a Token on the faulty_pkcs11 wrapper module (tests/support/faulty_pkcs11),
// which forwards to SoftHSM2 and, while its control file exists, answers
// CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT and closes every session as the
// fault begins; and a Token on SoftHSM2 whose token directory is moved away.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "pkcs11/module.h"
#include "pkcs11/token.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/test_helpers.h"
#include "tests/unit/pkcs11/make_iv.h"

namespace kmsd {
namespace {

using pkcs11::KeyRef;
using pkcs11::Module;
using pkcs11::ObjectHandle;
using pkcs11::Token;
using ::testing::HasSubstr;

std::string Text(const SecretBuffer& b) {
  return std::string(reinterpret_cast<const char*>(b.RevealData()), b.size());
}

// Calls `op` until it answers OK, for at most `limit`; its last code.
template <typename Op>
Code Eventually(Op op, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  Code code = CodeOf(op());
  while (code != Code::kOk && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    code = CodeOf(op());
  }
  return code;
}

class TokenLossTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    setenv("KMSD_FAULTY_CONTROL", control_.c_str(), 1);
    unsetenv("KMSD_FAULTY_REAL_MODULE");
    auto module = Module::Load(FAULTY_PKCS11_MODULE);
    ASSERT_TRUE(module.has_value()) << module.error();
    module_ = *module;
    auto token = Token::Open(module_, softhsm_.label(),
                             SecretBuffer::CopyOf(std::string_view(softhsm_.user_pin())), 3);
    ASSERT_TRUE(token.has_value()) << token.error();
    token_ = std::move(*token);
    auto root = token_->CreateTokenWrappingKey("root");
    ASSERT_TRUE(root.has_value()) << root.error();
    root_ = *root;
    auto hmac = token_->CreateTokenHmacKey("hmac");
    ASSERT_TRUE(hmac.has_value()) << hmac.error();
    hmac_ = *hmac;
    auto wrapped = token_->GenerateWrappedAesKey(root_);
    ASSERT_TRUE(wrapped.has_value()) << wrapped.error();
    wrapped_ = *wrapped;
  }
  void TearDown() override {
    token_.reset();
    unsetenv("KMSD_FAULTY_CONTROL");
  }

  void FaultOn(const std::string& words) { std::ofstream(control_) << words << "\n"; }
  void FaultOff() { std::filesystem::remove(control_); }

  Result<Bytes> Seal(const KeyRef& key, std::string_view plaintext) {
    return token_->EncryptGcm(key, MakeIv(7), AsBytes("aad"), AsBytes(plaintext));
  }
  Result<SecretBuffer> Unseal(const KeyRef& key, const Bytes& sealed) {
    return token_->DecryptGcm(key, MakeIv(7), AsBytes("aad"), sealed);
  }

  testing::SoftHsmToken softhsm_;  // first: sets SOFTHSM2_CONF before Module::Load
  testing::TempDir dir_;
  std::string control_ = dir_ / "fault";
  std::shared_ptr<Module> module_;
  std::unique_ptr<Token> token_;
  ObjectHandle root_ = 0;
  ObjectHandle hmac_ = 0;
  Bytes wrapped_;
};

TEST_F(TokenLossTest, ForwardsEverythingWithoutAFault) {
  EXPECT_TRUE(token_->Ping().ok());
  auto key = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_EQ(key->generation, 0u);
  auto sealed = Seal(*key, "hello");
  ASSERT_TRUE(sealed.has_value()) << sealed.error();
  auto opened = Unseal(*key, *sealed);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  EXPECT_EQ(Text(*opened), "hello");
  EXPECT_FALSE(token_->lost());
}

TEST_P(TokenLossTest, EveryCallIsTokenUnavailableUntilTheTokenIsBackThenItReconnects) {
  auto key = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(key.has_value()) << key.error();
  auto sealed = Seal(*key, "made before the fault");
  ASSERT_TRUE(sealed.has_value()) << sealed.error();
  // A raw session of our own, opened before the fault: the wrapper closes it.
  CK_SESSION_HANDLE raw = CK_INVALID_HANDLE;
  ASSERT_EQ(module_->functions()->C_OpenSession(token_->info().slot, CKF_SERIAL_SESSION, nullptr,
                                                nullptr, &raw),
            CKR_OK);

  FaultOn(GetParam());
  auto failed = Seal(*key, "during the fault");
  ASSERT_EQ(CodeOf(failed), Code::kTokenUnavailable);
  EXPECT_THAT(failed.error().message(), HasSubstr("token '" + softhsm_.label() + "'"));
  EXPECT_THAT(failed.error().message(), HasSubstr("reconnects by itself"));
  EXPECT_TRUE(token_->lost());
  for (int round = 0; round < 3; ++round) {  // also after reconnection attempts
    EXPECT_EQ(CodeOf(Unseal(*key, *sealed)), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(token_->HmacSha256(hmac_, AsBytes("x"))), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(token_->UnwrapAesKey(root_, wrapped_)), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(token_->GenerateWrappedAesKey(root_)), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(token_->CreateTokenWrappingKey("during")), Code::kTokenUnavailable);
    Bytes random(16);
    EXPECT_EQ(CodeOf(token_->GenerateRandom(random)), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(token_->Ping()), Code::kTokenUnavailable);
    std::this_thread::sleep_for(Token::kReconnectInterval);
  }
  EXPECT_EQ(token_->generation(), 0u);

  FaultOff();
  EXPECT_EQ(Eventually([&] { return token_->Ping(); }), Code::kOk);
  EXPECT_FALSE(token_->lost());
  EXPECT_EQ(token_->generation(), 1u);
  // The old session and its objects are gone; the old key's handle is refused
  // before it reaches the module.
  CK_SESSION_INFO info;
  EXPECT_EQ(module_->functions()->C_GetSessionInfo(raw, &info), CKR_SESSION_HANDLE_INVALID);
  auto stale = Seal(*key, "with the old handle");
  ASSERT_EQ(CodeOf(stale), Code::kTokenUnavailable);
  EXPECT_THAT(stale.error().message(), HasSubstr("reconnected since this key was unwrapped"));
  // Unwrapped again, the same version opens what was sealed before the fault.
  auto again = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(again.has_value()) << again.error();
  EXPECT_EQ(again->generation, 1u);
  auto opened = Unseal(*again, *sealed);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  EXPECT_EQ(Text(*opened), "made before the fault");
  EXPECT_EQ(CodeOf(token_->HmacSha256(hmac_, AsBytes("x"))), Code::kOk);
  EXPECT_EQ(CodeOf(token_->CreateTokenWrappingKey("after")), Code::kOk);
  // Destroying the old session object is a no-op (its handle may name another object).
  token_->DestroySessionObject(*key);
  EXPECT_EQ(CodeOf(Unseal(*again, *sealed)), Code::kOk);
}

INSTANTIATE_TEST_SUITE_P(BothErrors, TokenLossTest,
                         ::testing::Values("DEVICE_REMOVED", "TOKEN_NOT_PRESENT"));

// Taken out and put back between two calls: no call saw an error, but the
// sessions and the login are gone. The next call finds out and answers
// TOKEN_UNAVAILABLE; the one after reconnects.
TEST_F(TokenLossTest, ATokenPutBackBetweenTwoCallsIsFoundOutAndReconnected) {
  auto key = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(key.has_value()) << key.error();
  FaultOn("DEVICE_REMOVED");
  CK_ULONG count = 0;  // any call through the wrapper begins the fault
  module_->functions()->C_GetSlotList(CK_TRUE, nullptr, &count);
  FaultOff();
  EXPECT_EQ(CodeOf(token_->HmacSha256(hmac_, AsBytes("x"))), Code::kTokenUnavailable);
  EXPECT_EQ(Eventually([&] { return token_->HmacSha256(hmac_, AsBytes("x")); }), Code::kOk);
  EXPECT_EQ(token_->generation(), 1u);

  // Ping finds it out too, without a crypto call failing first.
  FaultOn("TOKEN_NOT_PRESENT");
  module_->functions()->C_GetSlotList(CK_TRUE, nullptr, &count);
  FaultOff();
  EXPECT_EQ(CodeOf(token_->Ping()), Code::kTokenUnavailable);
  EXPECT_EQ(Eventually([&] { return token_->Ping(); }), Code::kOk);
  EXPECT_EQ(token_->generation(), 2u);
}

// A fault on one call only, keeping the sessions: the error is still
// TOKEN_UNAVAILABLE, and the reconnection replaces sessions that still worked.
TEST_F(TokenLossTest, AFaultOnOneCallAlone) {
  auto key = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(key.has_value()) << key.error();
  FaultOn("DEVICE_REMOVED C_Encrypt keep-sessions");
  EXPECT_EQ(CodeOf(Seal(*key, "x")), Code::kTokenUnavailable);
  FaultOff();
  EXPECT_EQ(Eventually([&] { return token_->Ping(); }), Code::kOk);
  auto again = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(again.has_value()) << again.error();
  EXPECT_EQ(CodeOf(Seal(*again, "y")), Code::kOk);
}

// SoftHSM2 numbers private objects anew after a logout: the handles callers
// hold still work after a reconnection, data objects sharing a label told
// apart by their values; a destroyed one is NOT_FOUND.
TEST_F(TokenLossTest, PersistentHandlesStillWorkAfterAReconnection) {
  const Bytes one = {1, 2, 3}, two = {4, 5, 6};
  auto a = token_->CreateTokenDataObject("head", one);
  auto b = token_->CreateTokenDataObject("head", two);
  auto gone = token_->CreateTokenWrappingKey("gone");
  ASSERT_TRUE(a && b && gone);
  FaultOn("DEVICE_REMOVED");
  EXPECT_EQ(CodeOf(token_->Ping()), Code::kTokenUnavailable);
  FaultOff();
  EXPECT_EQ(Eventually([&] { return token_->Ping(); }), Code::kOk);
  EXPECT_EQ(token_->ReadDataObject(*a).value_or(Bytes{}), one);
  EXPECT_EQ(token_->ReadDataObject(*b).value_or(Bytes{}), two);
  EXPECT_EQ(CodeOf(token_->HmacSha256(hmac_, AsBytes("x"))), Code::kOk);
  ASSERT_TRUE(token_->DestroyObject(*gone).ok());
  EXPECT_EQ(CodeOf(token_->GenerateWrappedAesKey(*gone)), Code::kNotFound);
  EXPECT_EQ(CodeOf(token_->GenerateWrappedAesKey(root_)), Code::kOk);
}

// A token that comes back refusing the PIN kmsd holds (changed meanwhile):
// one attempt, then no more (each would count towards locking the PIN).
TEST_F(TokenLossTest, APinRefusedAtReconnectionIsNotTriedAgain) {
  FaultOn("DEVICE_REMOVED");
  EXPECT_EQ(CodeOf(token_->Ping()), Code::kTokenUnavailable);
  FaultOn("0xa0 C_Login");  // CKR_PIN_INCORRECT from C_Login alone
  std::this_thread::sleep_for(Token::kReconnectInterval);
  auto refused = token_->HmacSha256(hmac_, AsBytes("x"));
  ASSERT_EQ(CodeOf(refused), Code::kTokenUnavailable);
  EXPECT_THAT(refused.error().message(), HasSubstr("refuses the PIN"));
  FaultOff();
  std::this_thread::sleep_for(2 * Token::kReconnectInterval);
  EXPECT_EQ(CodeOf(token_->HmacSha256(hmac_, AsBytes("x"))), Code::kTokenUnavailable);
  EXPECT_TRUE(token_->lost());
}

// Many threads while the token comes and goes: every answer is OK or
// TOKEN_UNAVAILABLE, nothing hangs, and all work again at the end.
TEST_F(TokenLossTest, ConcurrentCallsWhileTheTokenComesAndGoes) {
  auto first = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(first.has_value()) << first.error();
  auto sealed = Seal(*first, "concurrent");
  ASSERT_TRUE(sealed.has_value());
  std::atomic<bool> stop{false};
  std::atomic<int> other_codes{0};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        // Each thread unwraps its own, as the keystore would after a reconnection.
        auto key = token_->UnwrapAesKey(root_, wrapped_);
        Code code = CodeOf(key);
        if (key) {
          code = t % 2 == 0 ? CodeOf(Unseal(*key, *sealed))
                            : CodeOf(token_->HmacSha256(hmac_, AsBytes("x")));
          token_->DestroySessionObject(*key);
        }
        if (code == Code::kOk) {
          ++ok;
        } else if (code != Code::kTokenUnavailable) {
          ++other_codes;
        }
      }
    });
  }
  for (int round = 0; round < 4; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    FaultOn(round % 2 == 0 ? "DEVICE_REMOVED" : "TOKEN_NOT_PRESENT");
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    FaultOff();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(other_codes.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(Eventually([&] { return token_->Ping(); }), Code::kOk);
  EXPECT_GE(token_->generation(), 1u);
  auto key = token_->UnwrapAesKey(root_, wrapped_);
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_EQ(CodeOf(Unseal(*key, *sealed)), Code::kOk);
}

// SoftHSM2 2.6.1 with its token directory moved away (or made unreadable to
// kmsd's user): C_GetTokenInfo, C_Login and C_GenerateKey answer
// CKR_GENERAL_ERROR and every use of a token object CKR_OBJECT_HANDLE_INVALID,
// which alone would read as "shredded" (NOT_FOUND). The Token probes the
// token and answers TOKEN_UNAVAILABLE. SoftHSM2 does not recover in the same
// process when the directory is back (it marks the token invalid for good):
// only a restart of kmsd (C_Initialize) does.
TEST(TokenFilesTest, UnreadableTokenFilesAreTokenUnavailableNotNotFound) {
  testing::SoftHsmToken softhsm;
  auto module = Module::Load(SOFTHSM_MODULE);
  ASSERT_TRUE(module.has_value()) << module.error();
  auto token = Token::Open(*module, softhsm.label(),
                           SecretBuffer::CopyOf(std::string_view(softhsm.user_pin())), 2);
  ASSERT_TRUE(token.has_value()) << token.error();
  auto root = (*token)->CreateTokenWrappingKey("root");
  auto hmac = (*token)->CreateTokenHmacKey("hmac");
  ASSERT_TRUE(root && hmac);
  auto wrapped = (*token)->GenerateWrappedAesKey(*root);
  ASSERT_TRUE(wrapped.has_value());
  const std::string tokens = softhsm.dir() / "tokens";
  const std::string moved = softhsm.dir() / "tokens-moved";
  std::filesystem::rename(tokens, moved);
  auto unwrapped = (*token)->UnwrapAesKey(*root, *wrapped);
  ASSERT_EQ(CodeOf(unwrapped), Code::kTokenUnavailable);
  EXPECT_THAT(unwrapped.error().message(), HasSubstr("C_GetTokenInfo"));
  EXPECT_EQ(CodeOf((*token)->HmacSha256(*hmac, AsBytes("x"))), Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf((*token)->Ping()), Code::kTokenUnavailable);
  std::filesystem::rename(moved, tokens);
  std::this_thread::sleep_for(Token::kReconnectInterval);
  // Whatever SoftHSM2 does now, the answer is one of the two, never a crash.
  const Code after = CodeOf((*token)->HmacSha256(*hmac, AsBytes("x")));
  EXPECT_TRUE(after == Code::kOk || after == Code::kTokenUnavailable) << static_cast<int>(after);
}

}  // namespace
}  // namespace kmsd
