// AccessDirectory over a real token and SQLite keystore, with a fake clock:
// principals and API keys survive a restart, a failed write changes nothing,
// secrets are checked (by the token once, then in memory), revoked and
// expired keys are refused, last use is recorded, and a shredded tenant's
// principals and keys are gone.
#include "keystore/access_directory.h"

#include <openssl/sha.h>

#include "tests/unit/keystore/hierarchy_fixture.h"

namespace kmsd {
namespace hierarchy_testing {
namespace {

using ::testing::HasSubstr;

std::string Text(const SecretBuffer& secret) {
  return std::string(reinterpret_cast<const char*>(secret.RevealData()), secret.size());
}

class AccessDirectoryTest : public HierarchyTest {
 protected:
  void SetUp() override {
    HierarchyTest::SetUp();
    MustCreateTenant("acme");
    MustCreateTenant("globex");
  }
  AccessDirectory& directory() { return hierarchy_->access(); }

  PrincipalRecord MustCreate(std::string tenant, std::string name,
                             std::vector<std::string> roles = {"user"}) {
    PrincipalRecord record;
    record.tenant = std::move(tenant);
    record.name = std::move(name);
    record.roles = std::move(roles);
    auto created = directory().CreatePrincipal(record);
    EXPECT_TRUE(created.has_value()) << created.error();
    return created.value_or(PrincipalRecord{});
  }
  std::string MustKey(std::string_view tenant, std::string_view principal,
                      std::optional<int64_t> lifetime = std::nullopt) {
    auto key = directory().CreateApiKey(tenant, principal, lifetime);
    EXPECT_TRUE(key.has_value()) << key.error();
    return key ? Text(key->secret) : std::string();
  }
};

TEST_F(AccessDirectoryTest, PrincipalsAndKeysSurviveARestartAndTheKeyStillAuthenticates) {
  PrincipalRecord created = MustCreate("acme", "app", {"user", "viewer"});
  EXPECT_EQ(created.created_at, kStart);
  const std::string secret = MustKey("acme", "app");
  ASSERT_TRUE(directory().Authenticate(secret).has_value());
  clock_.Advance(10);
  ASSERT_TRUE(directory().Authenticate(secret).has_value());
  ASSERT_TRUE(directory().FlushUsage().ok());
  Reopen();
  auto described = directory().DescribePrincipal("acme", "app");
  ASSERT_TRUE(described.has_value()) << described.error();
  EXPECT_EQ(described->roles, (std::vector<std::string>{"user", "viewer"}));
  auto keys = directory().ListApiKeys("acme", std::nullopt);
  ASSERT_TRUE(keys.has_value());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].last_used_at, std::optional<int64_t>(kStart + 10));
  auto again = directory().Authenticate(secret);
  ASSERT_TRUE(again.has_value()) << again.error();
  EXPECT_EQ(again->principal->name, "app");
  EXPECT_EQ(again->principal->tenant, "acme");
}

TEST_F(AccessDirectoryTest, TheStoreHoldsAnHmacNotTheSecretNorItsHash) {
  MustCreate("acme", "app");
  const std::string secret = MustKey("acme", "app");
  const KeyStoreSnapshot snapshot = Snapshot();
  ASSERT_EQ(snapshot.api_keys.size(), 1u);
  const Bytes& digest = snapshot.api_keys[0].digest;
  EXPECT_EQ(digest.size(), 32u);
  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), sha);
  EXPECT_NE(Bytes(sha, sha + sizeof sha), digest);
  EXPECT_EQ(secret.substr(8, 16), snapshot.api_keys[0].id);
}

TEST_F(AccessDirectoryTest, WrongMalformedRevokedAndExpiredSecretsAreRefused) {
  MustCreate("acme", "app");
  const std::string secret = MustKey("acme", "app");
  const std::string short_lived = MustKey("acme", "app", 60);
  std::string wrong = secret;
  wrong[30] = wrong[30] == 'x' ? 'y' : 'x';
  // Before and after the first good check (which caches the digest).
  for (int round = 0; round < 2; ++round) {
    for (const std::string& bad :
         {wrong, secret.substr(1), std::string("kmsd_ak_"), std::string()}) {
      auto refused = directory().Authenticate(bad);
      ASSERT_FALSE(refused.has_value());
      EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
      EXPECT_EQ(refused.error().message(), "the API key is not valid");
    }
    ASSERT_TRUE(directory().Authenticate(secret).has_value());
  }
  const std::string never_used = MustKey("acme", "app", 60);
  ASSERT_TRUE(directory().Authenticate(short_lived).has_value());
  clock_.Advance(60);
  auto expired = directory().Authenticate(short_lived);
  ASSERT_FALSE(expired.has_value());
  EXPECT_THAT(expired.error().message(), HasSubstr("has expired"));
  // Never proven: not worth a token call, just not valid.
  auto unproven = directory().Authenticate(never_used);
  ASSERT_FALSE(unproven.has_value());
  EXPECT_EQ(unproven.error().message(), "the API key is not valid");

  auto revoked = directory().RevokeApiKey("acme", secret.substr(8, 16));
  ASSERT_TRUE(revoked.has_value()) << revoked.error();
  const int64_t revoked_at = *revoked->revoked_at;
  clock_.Advance(5);
  auto twice = directory().RevokeApiKey("acme", secret.substr(8, 16));
  ASSERT_TRUE(twice.has_value());
  EXPECT_EQ(twice->revoked_at, std::optional<int64_t>(revoked_at));
  auto refused = directory().Authenticate(secret);
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message(), HasSubstr("was revoked"));
  EXPECT_EQ(CodeOf(directory().RevokeApiKey("globex", secret.substr(8, 16))), Code::kNotFound);
}

TEST_F(AccessDirectoryTest, AFailedWriteChangesNothing) {
  MustCreate("acme", "app");
  const std::string secret = MustKey("acme", "app");
  store_->fail_access = true;
  PrincipalRecord other{.tenant = "acme",
                        .name = "other",
                        .roles = {"user"},
                        .uids = {},
                        .gids = {},
                        .created_at = 0};
  EXPECT_EQ(CodeOf(directory().CreatePrincipal(other)), Code::kInternal);
  EXPECT_EQ(CodeOf(directory().CreateApiKey("acme", "app", std::nullopt)), Code::kInternal);
  EXPECT_EQ(CodeOf(directory().RevokeApiKey("acme", secret.substr(8, 16))), Code::kInternal);
  EXPECT_EQ(CodeOf(directory().SetPrincipalRoles("acme", "app", {"viewer"})), Code::kInternal);
  EXPECT_EQ(CodeOf(directory().DeletePrincipal("acme", "app")), Code::kInternal);
  store_->fail_access = false;
  EXPECT_EQ(directory().ListPrincipals("acme").size(), 1u);
  EXPECT_EQ(directory().DescribePrincipal("acme", "app")->roles, std::vector<std::string>{"user"});
  EXPECT_EQ(directory().ListApiKeys("acme", std::nullopt)->size(), 1u);
  EXPECT_TRUE(directory().Authenticate(secret).has_value());
}

TEST_F(AccessDirectoryTest, BadRequestsGetTheirCodes) {
  MustCreate("acme", "app");
  PrincipalRecord dup{
      .tenant = "acme", .name = "app", .roles = {"user"}, .uids = {}, .gids = {}, .created_at = 0};
  EXPECT_EQ(CodeOf(directory().CreatePrincipal(dup)), Code::kAlreadyExists);
  dup.tenant = "nowhere";
  EXPECT_EQ(CodeOf(directory().CreatePrincipal(dup)), Code::kNotFound);
  EXPECT_EQ(CodeOf(directory().CreateApiKey("acme", "ghost", std::nullopt)), Code::kNotFound);
  EXPECT_EQ(CodeOf(directory().CreateApiKey("globex", "app", std::nullopt)), Code::kNotFound);
  EXPECT_EQ(CodeOf(directory().CreateApiKey("acme", "app", 0)), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(directory().CreateApiKey("acme", "app", kMaxApiKeyLifetimeSeconds + 1)),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(directory().ListApiKeys("acme", "ghost")), Code::kNotFound);
  EXPECT_EQ(CodeOf(directory().DeletePrincipal("globex", "app")), Code::kNotFound);
  EXPECT_EQ(CodeOf(directory().SetPrincipalRoles("acme", "ghost", {"user"})), Code::kNotFound);
}

TEST_F(AccessDirectoryTest, DeletingAPrincipalDeletesItsKeysAndBindingsFollowPrincipals) {
  PrincipalRecord bound{.tenant = "acme",
                        .name = "batch",
                        .roles = {"user"},
                        .uids = {1234},
                        .gids = {77},
                        .created_at = 0};
  ASSERT_TRUE(directory().CreatePrincipal(bound).has_value());
  EXPECT_TRUE(directory().IsBoundPeer(1234, {}));
  const uint64_t group[] = {5, 77};
  EXPECT_TRUE(directory().IsBoundPeer(99, group));
  EXPECT_FALSE(directory().IsBoundPeer(99, {}));
  const std::string secret = MustKey("acme", "batch");
  ASSERT_TRUE(directory().DeletePrincipal("acme", "batch").ok());
  EXPECT_FALSE(directory().IsBoundPeer(1234, {}));
  EXPECT_EQ(CodeOf(directory().Authenticate(secret)), Code::kAccessDenied);
  Reopen();
  EXPECT_TRUE(directory().ListApiKeys("acme", std::nullopt)->empty());
}

TEST_F(AccessDirectoryTest, AShreddedTenantsPrincipalsAndKeysAreGoneAndStayGone) {
  lifecycle_.min_pending_window_seconds = 1;
  Reopen();
  MustCreate("acme", "app");
  MustCreate("globex", "app");
  const std::string acme_secret = MustKey("acme", "app");
  const std::string globex_secret = MustKey("globex", "app");
  ASSERT_TRUE(hierarchy_->ScheduleTenantDeletion("acme", 1).has_value());
  clock_.Advance(2);
  EXPECT_EQ(hierarchy_->RunDueWork().tenants_shredded, 1u);
  EXPECT_EQ(CodeOf(directory().Authenticate(acme_secret)), Code::kAccessDenied);
  EXPECT_TRUE(directory().ListPrincipals("acme").empty());
  EXPECT_TRUE(directory().Authenticate(globex_secret).has_value());
  MustCreateTenant("acme");  // the name again: nothing of the old tenant comes back
  EXPECT_TRUE(directory().ListPrincipals("acme").empty());
  Reopen();
  EXPECT_TRUE(directory().ListPrincipals("acme").empty());
  EXPECT_EQ(directory().ListPrincipals("globex").size(), 1u);
  EXPECT_EQ(CodeOf(directory().Authenticate(acme_secret)), Code::kAccessDenied);
}

}  // namespace
}  // namespace hierarchy_testing
}  // namespace kmsd
