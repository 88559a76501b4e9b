// End-to-end: sessions, MFA and failed attempts through the real socket
// (issue 10). A session opened with an API key acts as that key and ends
// with it, at logout or revocation; max_concurrent_sessions caps them; a
// TOTP seed enrolled by a manager gives codes that Debian's oathtool (a
// client this project did not write) computes, each accepted once;
// mfa_required makes changes need a session opened with a code, while crypto
// with an API key goes on; guessing credentials locks the peer out with an
// alert. The test's uid is the dev daemon's admin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/policy_types.h"
#include "protocol/session_types.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class SessionsTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    MustCall("tenant.create", "globex");
  }

  Result<ops::SessionLoginReply> Login(Connection& with_key, const std::string& principal,
                                       std::optional<std::string> totp = std::nullopt) {
    return CallOp<ops::SessionLogin>(
        with_key, "acme",
        {.principal = principal,
         .totp = totp ? std::optional<std::string_view>(*totp) : std::nullopt});
  }

  std::unique_ptr<Connection> DialWith(const std::string& credential) {
    auto dialed = Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(10000),
                                   kDefaultMaxRequestBytes, SecretBuffer::CopyOf(credential));
    EXPECT_TRUE(dialed) << dialed.error();
    return dialed ? std::move(*dialed) : nullptr;
  }

  static Result<ops::EncryptReply> EncryptAs(Connection& as) {
    static constexpr uint8_t kPlaintext[] = {'s'};
    return CallOp<ops::Encrypt>(as, "acme",
                                {.key = "alias/data", .plaintext = kPlaintext, .context = {}});
  }

  static Result<ops::KeyDescription> CreateKeyAs(Connection& as, const std::string& name) {
    return CallOp<ops::KeyCreate>(as, "acme", {.name = name, .description = {}});
  }

  Result<ops::PolicyDescription> PutPolicy(const std::string& document) {
    return CallOp<ops::TenantPutPolicy>(*connection_, "acme", {.document = document});
  }

  // The code oathtool computes for base32 `secret` now, `steps_ahead`
  // 30-second steps from now.
  static std::string Oathtool(const std::string& secret, int steps_ahead = 0) {
    const int64_t at = std::time(nullptr) + 30 * steps_ahead;
    CommandResult run =
        RunCommand({"/usr/bin/oathtool", "--totp", "-b", "-N", "@" + std::to_string(at), secret});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    std::string code = run.out;
    while (!code.empty() && (code.back() == '\n' || code.back() == '\r')) code.pop_back();
    return code;
  }
};

TEST_F(SessionsTest, ASessionActsAsItsKeyUntilLogout) {
  auto with_key = Principal("acme", "app", {"user"});
  auto opened = Login(*with_key, "app");
  ASSERT_TRUE(opened) << opened.error();
  const std::string token = SecretText(opened->session);
  EXPECT_TRUE(std::regex_match(token, std::regex("kmsd_st_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")));
  EXPECT_EQ(opened->principal, "app");
  EXPECT_FALSE(opened->mfa);
  EXPECT_EQ(opened->idle_timeout_seconds, 3600u);
  auto session = DialWith(token);
  ASSERT_TRUE(EncryptAs(*session));
  // A manager (here the admin) sees it, never its token.
  auto listed = CallOp<ops::SessionList>(*connection_, "acme", {});
  ASSERT_TRUE(listed) << listed.error();
  ASSERT_EQ(listed->sessions.size(), 1u);
  EXPECT_EQ(listed->sessions[0].id, opened->id);
  EXPECT_EQ(listed->sessions[0].api_key_id, opened->api_key_id);
  EXPECT_TRUE(CallOp<ops::SessionList>(*connection_, "globex", {})->sessions.empty());
  // Logout ends it at once.
  auto closed = CallOp<ops::SessionLogout>(*session, "acme", {});
  ASSERT_TRUE(closed) << closed.error();
  auto after = EncryptAs(*session);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), Code::kAccessDenied);
  EXPECT_THAT(after.error().message(), HasSubstr("session is not valid"));
  EXPECT_TRUE(EncryptAs(*with_key));  // the key goes on
  // Nothing of it reaches the log.
  EXPECT_THAT(daemon_->ReadLog(), Not(HasSubstr(token.substr(25))));
}

TEST_F(SessionsTest, LoginIsTheKeysOwnAndEndsWithTheKey) {
  auto with_key = Principal("acme", "app", {"user"});
  EXPECT_EQ(CodeOf(Login(*connection_, "app")), Code::kInvalidArgument);  // an admin
  EXPECT_EQ(CodeOf(Login(*with_key, "someone-else")), Code::kInvalidArgument);
  auto opened = Login(*with_key, "app");
  ASSERT_TRUE(opened) << opened.error();
  auto session = DialWith(SecretText(opened->session));
  EXPECT_EQ(CodeOf(Login(*session, "app")), Code::kInvalidArgument);  // not with a session
  EXPECT_EQ(CodeOf(CallOp<ops::SessionLogout>(*with_key, "acme", {})), Code::kInvalidArgument);
  // Another tenant's session: not found, and nothing revoked.
  EXPECT_EQ(CodeOf(CallOp<ops::SessionRevoke>(*connection_, "globex", {.id = opened->id})),
            Code::kNotFound);
  EXPECT_TRUE(EncryptAs(*session));
  // Revoking the API key ends the sessions opened with it.
  ASSERT_TRUE(CallOp<ops::ApiKeyRevoke>(*connection_, "acme", {.id = opened->api_key_id}));
  auto ended = EncryptAs(*session);
  ASSERT_FALSE(ended);
  EXPECT_EQ(ended.error().code(), Code::kAccessDenied);
  EXPECT_THAT(ended.error().message(), HasSubstr("revoked"));
  // A forged token of the right shape is not valid.
  std::string forged = SecretText(opened->session);
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_THAT(EncryptAs(*DialWith(forged)).error().message(), HasSubstr("session is not valid"));
}

TEST_F(SessionsTest, ManagersRevokeSessionsAndThePolicyCapsThem) {
  auto with_key = Principal("acme", "app", {"user"});
  auto manager = Principal("acme", "ops", {"manager"});
  ASSERT_TRUE(
      PutPolicy("security_policies:\n  access_control:\n    max_concurrent_sessions: 2\n"
                "    session_timeout_minutes: 5\n"));
  auto first = Login(*with_key, "app");
  auto second = Login(*with_key, "app");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->idle_timeout_seconds, 300u);
  auto third = Login(*with_key, "app");
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(third.error().message(), HasSubstr("max_concurrent_sessions"));
  auto revoked = CallOp<ops::SessionRevoke>(*manager, "acme", {.id = first->id});
  ASSERT_TRUE(revoked) << revoked.error();
  EXPECT_EQ(CodeOf(EncryptAs(*DialWith(SecretText(first->session)))), Code::kAccessDenied);
  EXPECT_TRUE(Login(*with_key, "app"));
  // A user may not list or revoke sessions.
  EXPECT_EQ(CodeOf(CallOp<ops::SessionRevoke>(*with_key, "acme", {.id = second->id})),
            Code::kAccessDenied);
}

TEST_F(SessionsTest, TotpCodesFromOathtoolOpenMfaSessionsOnce) {
  auto with_key = Principal("acme", "app", {"user"});
  auto manager = Principal("acme", "ops", {"manager"});
  // Not enrolled yet: a code is refused.
  EXPECT_EQ(CodeOf(Login(*with_key, "app", std::string("123456"))), Code::kAccessDenied);
  // A manager holds no crypto: it may not enroll a user, who may use keys
  // (no escalation); an admin may.
  EXPECT_EQ(CodeOf(CallOp<ops::MfaEnroll>(*manager, "acme", {.principal = "app"})),
            Code::kAccessDenied);
  auto enrolled = CallOp<ops::MfaEnroll>(*connection_, "acme", {.principal = "app"});
  ASSERT_TRUE(enrolled) << enrolled.error();
  const std::string secret = SecretText(enrolled->secret);
  EXPECT_TRUE(std::regex_match(secret, std::regex("[A-Z2-7]{32}")));
  EXPECT_EQ(SecretText(enrolled->otpauth_uri),
            "otpauth://totp/kmsd:acme%2Fapp?secret=" + secret +
                "&issuer=kmsd&algorithm=SHA1&digits=6&period=30");
  EXPECT_EQ(CodeOf(CallOp<ops::MfaEnroll>(*with_key, "acme", {.principal = "app"})),
            Code::kAccessDenied);  // a user does not enroll
  EXPECT_EQ(CodeOf(CallOp<ops::MfaEnroll>(*connection_, "acme", {.principal = "ghost"})),
            Code::kNotFound);

  const std::string code = Oathtool(secret);
  auto opened = Login(*with_key, "app", code);
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_TRUE(opened->mfa);
  // The same code again (in its window): refused.
  auto replayed = Login(*with_key, "app", code);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().code(), Code::kAccessDenied);
  EXPECT_THAT(replayed.error().message(), HasSubstr("already used"));
  // A code three steps ahead, or not six digits: not valid.
  auto ahead = Login(*with_key, "app", Oathtool(secret, 3));
  ASSERT_FALSE(ahead);
  EXPECT_THAT(ahead.error().message(), HasSubstr("not valid"));
  EXPECT_EQ(CodeOf(Login(*with_key, "app", std::string("12345"))), Code::kAccessDenied);
  // The seed is in no log, and the keystore holds it wrapped only.
  const std::string log = daemon_->ReadLog();
  EXPECT_THAT(log, Not(HasSubstr(secret)));
}

TEST_F(SessionsTest, MfaRequiredGuardsChangesNotCrypto) {
  auto user = Principal("acme", "app", {"user"});
  auto manager = Principal("acme", "ops", {"manager"});
  ASSERT_TRUE(PutPolicy("security_policies:\n  access_control:\n    mfa_required: true\n"));
  // Crypto and reads with an API key go on.
  EXPECT_TRUE(EncryptAs(*user));
  EXPECT_TRUE(CallOp<ops::KeyList>(*manager, "acme", {}));
  // Changes need a session opened with a code.
  auto refused = CreateKeyAs(*manager, "one");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
  EXPECT_THAT(refused.error().message(), HasSubstr("requires MFA"));
  auto plain = Login(*manager, "ops");
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_EQ(CodeOf(CreateKeyAs(*DialWith(SecretText(plain->session)), "one")), Code::kAccessDenied);
  // The admin enrolls the manager (admins are not bound by the policy).
  auto enrolled = CallOp<ops::MfaEnroll>(*connection_, "acme", {.principal = "ops"});
  ASSERT_TRUE(enrolled) << enrolled.error();
  auto strong = Login(*manager, "ops", Oathtool(SecretText(enrolled->secret)));
  ASSERT_TRUE(strong) << strong.error();
  auto with_mfa = DialWith(SecretText(strong->session));
  EXPECT_TRUE(CreateKeyAs(*with_mfa, "one"));
  // Without MFA in force, the same change goes through with the key.
  ASSERT_TRUE(PutPolicy("security_policies:\n  access_control:\n    mfa_required: false\n"));
  EXPECT_TRUE(CreateKeyAs(*manager, "two"));
}

// The admin (the test's uid) may do everything without a credential, so
// its failed attempts gain it nothing and never hold it: guessing from
// another peer is AccessTest.GuessingKeysLocksThePeerOutWithAnAlert.
TEST_F(SessionsTest, AnAdminPeerIsNeverLockedOut) {
  auto with_key = Principal("acme", "app", {"user"});
  for (int i = 0; i < 8; ++i) {
    auto refused = EncryptAs(*DialWith("kmsd_st_0123456789abcdef_" + std::string(43, 'A')));
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message(), HasSubstr("session is not valid")) << i;
  }
  EXPECT_TRUE(EncryptAs(*with_key));
  EXPECT_THAT(daemon_->ReadLog(), Not(HasSubstr("ALERT")));
}

// Review findings, each its own attack.
TEST_F(SessionsTest, WrongTotpCodesHoldThePrincipalsCodesForEveryone) {
  auto with_key = Principal("acme", "app", {"user"});
  auto enrolled = CallOp<ops::MfaEnroll>(*connection_, "acme", {.principal = "app"});
  ASSERT_TRUE(enrolled) << enrolled.error();
  const std::string good = Oathtool(SecretText(enrolled->secret));
  const std::string wrong = good == "000000" ? "111111" : "000000";
  for (int i = 0; i < 5; ++i) {
    auto refused = Login(*with_key, "app", wrong);
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message(), HasSubstr("not valid")) << i;
  }
  // Even the right code waits now (the peer, an admin, is not held itself).
  auto held = Login(*with_key, "app", good);
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error().code(), Code::kAccessDenied);
  EXPECT_THAT(held.error().message(), HasSubstr("TOTP codes of principal acme/app is locked out"));
  EXPECT_TRUE(held.error().retry_after_ms().has_value());
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("ALERT: TOTP codes of principal acme/app"));
  EXPECT_TRUE(Login(*with_key, "app"));  // without a code: no MFA, not held
}

TEST_F(SessionsTest, EnrollingNeedsEverythingTheTargetHoldsAndEndsItsSessions) {
  auto manager = Principal("acme", "ops", {"manager"});
  auto app = Principal("acme", "app", {"user"});
  ASSERT_TRUE(CallOp<ops::RoleCreate>(*connection_, "acme",
                                      {.name = "enroller",
                                       .inherits = std::nullopt,
                                       .allow = std::vector<std::string>{"mfa:manage"}}));
  auto enroller = Principal("acme", "helpdesk", {"enroller"});
  auto refused = CallOp<ops::MfaEnroll>(*enroller, "acme", {.principal = "ops"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
  EXPECT_THAT(refused.error().message(), HasSubstr("enroll the TOTP seed of principal 'ops'"));
  // Re-enrolling ends the principal's sessions.
  auto opened = Login(*app, "app");
  ASSERT_TRUE(opened) << opened.error();
  auto session = DialWith(SecretText(opened->session));
  ASSERT_TRUE(EncryptAs(*session));
  ASSERT_TRUE(CallOp<ops::MfaEnroll>(*connection_, "acme", {.principal = "app"}));
  EXPECT_EQ(CodeOf(EncryptAs(*session)), Code::kAccessDenied);
  // A manager enrolls a manager.
  AddPrincipal("acme", "ops2", {"manager"});
  EXPECT_TRUE(CallOp<ops::MfaEnroll>(*manager, "acme", {.principal = "ops2"}));
}

TEST_F(SessionsTest, KmsdContextKeysAreNobodysButKmsds) {
  static constexpr uint8_t kPlaintext[] = {'x'};
  auto encrypted = CallOp<ops::Encrypt>(
      *connection_, "acme",
      {.key = "secrets-key", .plaintext = kPlaintext, .context = {{"kmsd:purpose", "totp-seed"}}});
  ASSERT_FALSE(encrypted);
  EXPECT_EQ(encrypted.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(encrypted.error().message(), HasSubstr("kmsd:"));
}

TEST_F(SessionsTest, SessionsOfARevokedKeyLeaveTheListAndTheCap) {
  auto with_key = Principal("acme", "app", {"user"});
  ASSERT_TRUE(PutPolicy("security_policies:\n  access_control:\n    max_concurrent_sessions: 1\n"));
  auto opened = Login(*with_key, "app");
  ASSERT_TRUE(opened) << opened.error();
  ASSERT_TRUE(CallOp<ops::ApiKeyRevoke>(*connection_, "acme", {.id = opened->api_key_id}));
  EXPECT_TRUE(CallOp<ops::SessionList>(*connection_, "acme", {})->sessions.empty());
  auto fresh = DialWithNewKey("acme", "app");
  EXPECT_TRUE(Login(*fresh, "app"));  // the revoked key's session no longer counts
}

}  // namespace
}  // namespace kmsd::testing
