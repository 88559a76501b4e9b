// SessionTable over a fake clock: tokens, idle expiry, the tenant's cap,
// closing, and TOTP steps accepted once; AuthLockout's peers.
#include "daemon/sessions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <string>

#include "policy/totp.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

class SteppedClock final : public Clock {
 public:
  int64_t NowSeconds() const override { return now_.load(); }
  void Advance(int64_t seconds) { now_ += seconds; }

 private:
  std::atomic<int64_t> now_{1700000000};
};

SessionInfo Info(const std::string& tenant, const std::string& principal, int64_t idle = 60) {
  return {.id = {},
          .tenant = tenant,
          .principal = principal,
          .api_key_id = "0123456789abcdef",
          .mfa = false,
          .created_at = 0,
          .last_used_at = 0,
          .idle_timeout_seconds = idle};
}

std::string Text(const SecretBuffer& secret) {
  return std::string(reinterpret_cast<const char*>(secret.RevealData()), secret.size());
}

TEST(SessionTableTest, ATokenNamesItsSessionAndNothingElse) {
  SteppedClock clock;
  SessionTable sessions(clock);
  auto opened = sessions.Open(Info("acme", "app"), std::nullopt);
  ASSERT_TRUE(opened) << opened.error();
  const std::string token = Text(opened->token);
  EXPECT_TRUE(std::regex_match(token, std::regex("kmsd_st_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")));
  EXPECT_TRUE(IsSessionToken(token));
  EXPECT_EQ(token.substr(8, 16), opened->info.id);
  auto found = sessions.Authenticate(token);
  ASSERT_TRUE(found) << found.error();
  EXPECT_EQ(found->principal, "app");
  for (std::string bad : {std::string(), token.substr(0, token.size() - 1), token + "A",
                          "kmsd_ak_" + token.substr(8)}) {
    auto refused = sessions.Authenticate(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
    EXPECT_EQ(refused.error().message(), "the session is not valid");
  }
  std::string forged = token;
  forged.back() = forged.back() == 'x' ? 'y' : 'x';
  EXPECT_EQ(sessions.Authenticate(forged).error().message(), "the session is not valid");
}

TEST(SessionTableTest, ASessionIdleTooLongIsGone) {
  SteppedClock clock;
  SessionTable sessions(clock);
  auto opened = sessions.Open(Info("acme", "app", 60), std::nullopt);
  ASSERT_TRUE(opened);
  const std::string token = Text(opened->token);
  clock.Advance(60);
  ASSERT_TRUE(sessions.Authenticate(token));  // used: idle time starts again
  clock.Advance(60);
  ASSERT_TRUE(sessions.Authenticate(token));
  clock.Advance(61);
  auto expired = sessions.Authenticate(token);
  ASSERT_FALSE(expired);
  EXPECT_THAT(expired.error().message(), HasSubstr("expired"));
  EXPECT_EQ(sessions.Authenticate(token).error().message(), "the session is not valid");
  EXPECT_TRUE(sessions.List("acme").empty());
}

TEST(SessionTableTest, TheCapCountsLiveSessionsOfTheTenant) {
  SteppedClock clock;
  SessionTable sessions(clock);
  auto first = sessions.Open(Info("acme", "a", 10), 2);
  ASSERT_TRUE(first);
  ASSERT_TRUE(sessions.Open(Info("acme", "b", 100), 2));
  ASSERT_TRUE(sessions.Open(Info("globex", "a"), 2));  // another tenant's
  auto over = sessions.Open(Info("acme", "c"), 2);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), Code::kQuotaExceeded);
  clock.Advance(11);  // the first one expires
  EXPECT_TRUE(sessions.Open(Info("acme", "c"), 2));
  EXPECT_EQ(sessions.List("acme").size(), 2u);
}

TEST(SessionTableTest, CloseIsForTheTenantsOwn) {
  SteppedClock clock;
  SessionTable sessions(clock);
  auto opened = sessions.Open(Info("acme", "app"), std::nullopt);
  ASSERT_TRUE(opened);
  EXPECT_EQ(sessions.Close("globex", opened->info.id).error().code(), Code::kNotFound);
  EXPECT_TRUE(sessions.Authenticate(Text(opened->token)));
  ASSERT_TRUE(sessions.Close("acme", opened->info.id));
  EXPECT_FALSE(sessions.Authenticate(Text(opened->token)));
  EXPECT_EQ(sessions.Close("acme", opened->info.id).error().code(), Code::kNotFound);
}

TEST(SessionTableTest, ATotpStepIsAcceptedOncePerPrincipal) {
  SteppedClock clock;
  SessionTable sessions(clock);
  const std::string seed = "12345678901234567890";
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
  const uint64_t step = static_cast<uint64_t>(clock.NowSeconds() / kTotpStepSeconds);
  const std::string code = HotpCode(bytes, step);
  EXPECT_TRUE(sessions.CheckTotp("acme", "app", bytes, code).ok());
  Status replayed = sessions.CheckTotp("acme", "app", bytes, code);
  EXPECT_EQ(replayed.code(), Code::kAccessDenied);
  EXPECT_THAT(replayed.message(), HasSubstr("already used"));
  // Another principal with the same seed has its own steps.
  EXPECT_TRUE(sessions.CheckTotp("acme", "other", bytes, code).ok());
  clock.Advance(kTotpStepSeconds);
  EXPECT_TRUE(sessions.CheckTotp("acme", "app", bytes, HotpCode(bytes, step + 1)).ok());
}

TEST(AuthLockoutTest, APeerPastTheThresholdIsLockedOutAlone) {
  AuthLockout lockout(LockoutOptions{.threshold = 3,
                                     .window_ms = 60000,
                                     .first_delay_ms = 60000,
                                     .max_delay_ms = 600000,
                                     .max_subjects = 100});
  const Peer peer{.uid = 1000, .gid = 1000, .pid = 1};
  for (int i = 0; i < 2; ++i) {
    lockout.Failed(peer, "acme/app", "an API key");
    EXPECT_TRUE(lockout.CheckPeer(peer).ok()) << i;
  }
  lockout.Failed(peer, std::nullopt, "an API key");
  Status locked = lockout.CheckPeer(peer);
  EXPECT_EQ(locked.code(), Code::kAccessDenied);
  EXPECT_THAT(locked.message(), HasSubstr("locked out"));
  EXPECT_TRUE(locked.retry_after_ms().has_value());
  EXPECT_TRUE(lockout.CheckPeer({.uid = 1001, .gid = 1000, .pid = 1}).ok());
}

TEST(AuthLockoutTest, ExemptPeersAreNeitherCountedNorHeld) {
  AuthLockout lockout(LockoutOptions{.threshold = 1}, [](const Peer& p) { return p.uid == 0; });
  const Peer admin{.uid = 0, .gid = 0, .pid = 1};
  for (int i = 0; i < 5; ++i) lockout.Failed(admin, std::nullopt, "an API key");
  EXPECT_TRUE(lockout.CheckPeer(admin).ok());
  const Peer other{.uid = 7, .gid = 7, .pid = 1};
  lockout.Failed(other, std::nullopt, "an API key");
  EXPECT_EQ(lockout.CheckPeer(other).code(), Code::kAccessDenied);
}

}  // namespace
}  // namespace kmsd
