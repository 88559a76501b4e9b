// Custom roles, permission statements, grants and the resource decision of
// AccessPolicy: pure functions, no daemon.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/access.h"
#include "policy/grants.h"
#include "policy/roles.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using P = Permission;

RoleRecord Role(std::string name, std::vector<std::string> inherits,
                std::vector<std::string> allow) {
  return {.tenant = "acme",
          .name = std::move(name),
          .inherits = std::move(inherits),
          .allow = std::move(allow),
          .created_at = 0,
          .updated_at = 0};
}

RoleCatalog Catalog(std::initializer_list<RoleRecord> roles) {
  RoleCatalog catalog;
  for (const RoleRecord& role : roles) catalog[role.name] = role;
  return catalog;
}

KeyId IdOf(uint8_t n) {
  KeyId id{};
  id[15] = n;
  return id;
}

TEST(StatementTest, APermissionAFamilyOrEverythingNarrowedOrNot) {
  auto one = ParseStatement("crypto:encrypt");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0], (ScopedPermission{P::kEncrypt, Scope::kEverywhere, ""}));

  auto narrowed = ParseStatement("key:rotate@key/orders");
  ASSERT_TRUE(narrowed);
  EXPECT_EQ((*narrowed)[0], (ScopedPermission{P::kKeyRotate, Scope::kKey, "orders"}));

  // A family narrowed keeps only its members that act on one key.
  auto family = ParseStatement("crypto:*@alias/current");
  ASSERT_TRUE(family);
  EXPECT_EQ(family->size(), 5u);  // encrypt, decrypt, re-encrypt from/to, data keys
  for (const auto& p : *family) {
    EXPECT_NE(p.permission, P::kGenerateRandom);
    EXPECT_EQ(p.scope, Scope::kAlias);
    EXPECT_EQ(p.name, "alias/current");
  }
  // "*" is what a tenant role may hold: never an admin's permission.
  auto all = ParseStatement("*");
  ASSERT_TRUE(all);
  for (const auto& p : *all) {
    EXPECT_NE(p.permission, P::kTenantCreate);
    EXPECT_NE(p.permission, P::kServiceBackup);
  }
  auto every_key = ParseStatement("crypto:decrypt@key/*");
  ASSERT_TRUE(every_key);
  EXPECT_EQ((*every_key)[0].scope, Scope::kEverywhere);
  auto by_id = ParseStatement("crypto:decrypt@key/000102030405060708090a0b0c0d0e0f");
  ASSERT_TRUE(by_id);
  EXPECT_EQ((*by_id)[0].name, "000102030405060708090a0b0c0d0e0f");
}

TEST(StatementTest, EveryBadStatementIsInvalidArgumentNamingIt) {
  for (const char* bad :
       {"", "crypto", "crypto:everything", "tenant:create", "service:backup", "bogus:*",
        "principal:manage@key/orders", "crypto:encrypt@", "crypto:encrypt@key/",
        "crypto:encrypt@key/Orders", "crypto:encrypt@alias/", "crypto:encrypt@tenant/acme",
        "crypto:generate-random@key/orders", "tenant:*@key/orders"}) {
    auto parsed = ParseStatement(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.error().message(), HasSubstr("permission statement")) << bad;
  }
}

TEST(CustomRoleTest, ValidRolesAndEveryRuleBroken) {
  const RoleCatalog roles = Catalog({Role("base", {"viewer"}, {})});
  EXPECT_TRUE(ValidateCustomRole(Role("r", {"base", "user"}, {"key:read@key/a"}), roles).ok());
  const std::vector<std::pair<RoleRecord, std::string>> bad = {
      {Role("viewer", {"user"}, {}), "built in"},
      {Role("admin", {"user"}, {}), "built in"},
      {Role("Bad", {"user"}, {}), "role name"},
      {Role("r", {}, {}), "inherits nothing"},
      {Role("r", {"admin"}, {}), "'admin'"},
      {Role("r", {"ghost"}, {}), "unknown role 'ghost'"},
      {Role("r", {"user", "user"}, {}), "twice"},
      {Role("r", {}, {"nope"}), "permission statement"},
      {Role("r", std::vector<std::string>(kMaxRoleInherits + 1, "user"), {}), "at most"},
  };
  for (const auto& [role, why] : bad) {
    Status status = ValidateCustomRole(role, roles);
    EXPECT_EQ(status.code(), Code::kInvalidArgument) << role.name << " " << why;
    EXPECT_THAT(status.message(), HasSubstr(why));
  }
}

TEST(CustomRoleTest, ACycleIsNamedAsAPath) {
  RoleCatalog roles = Catalog({Role("a", {"b"}, {}), Role("b", {"c"}, {}), Role("c", {"a"}, {})});
  Status status = ValidateCustomRole(roles.at("c"), roles);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("c -> a -> b -> c"));
  // Resolving a cyclic catalog (never written) still ends.
  const EffectivePermissions gives = Resolve({"a"}, roles);
  EXPECT_TRUE(gives.everywhere.none());
}

TEST(CustomRoleTest, ResolveAddsInheritedAndDropsNarrowedCoveredEverywhere) {
  const RoleCatalog roles =
      Catalog({Role("base", {"viewer"}, {"crypto:encrypt@key/orders", "key:read@key/orders"}),
               Role("top", {"base"}, {"crypto:decrypt"})});
  const EffectivePermissions gives = Resolve({"top"}, roles);
  EXPECT_TRUE(gives.everywhere.test(static_cast<size_t>(P::kKeyRead)));
  EXPECT_TRUE(gives.everywhere.test(static_cast<size_t>(P::kDecrypt)));
  EXPECT_FALSE(gives.everywhere.test(static_cast<size_t>(P::kEncrypt)));
  ASSERT_EQ(gives.scoped.size(), 1u);  // key:read@key/orders is covered by viewer
  EXPECT_EQ(gives.scoped[0], (ScopedPermission{P::kEncrypt, Scope::kKey, "orders"}));
  EXPECT_TRUE(gives.Anywhere().test(static_cast<size_t>(P::kEncrypt)));
  EXPECT_TRUE(ValidateTenantRoles({"top", "user"}, roles).ok());
  EXPECT_THAT(ValidateTenantRoles({"ghost"}, roles).message(), HasSubstr("base, top"));
}

TEST(GrantTest, OperationsStatesAndConstraints) {
  EXPECT_TRUE(ValidateGrantOperations({"encrypt", "describe-key"}).ok());
  EXPECT_THAT(ValidateGrantOperations({}).message(), HasSubstr("at least one"));
  EXPECT_THAT(ValidateGrantOperations({"fly"}).message(), HasSubstr("unknown grant operation"));
  EXPECT_THAT(ValidateGrantOperations({"encrypt", "encrypt"}).message(), HasSubstr("twice"));

  GrantRecord grant{.id = "0123456789abcdef",
                    .tenant = "acme",
                    .principal = "app",
                    .key_id = IdOf(1),
                    .operations = {"encrypt"},
                    .context = {{"purpose", "billing"}},
                    .created_at = 100,
                    .expires_at = 200,
                    .retired_at = std::nullopt};
  const EncryptionContext holds{{"purpose", "billing"}, {"extra", "x"}};
  const EncryptionContext other{{"purpose", "other"}};
  EXPECT_TRUE(GrantAllows(grant, P::kEncrypt, IdOf(1), &holds, 150));
  EXPECT_FALSE(GrantAllows(grant, P::kEncrypt, IdOf(1), &other, 150));
  EXPECT_FALSE(GrantAllows(grant, P::kEncrypt, IdOf(1), nullptr, 150));
  EXPECT_FALSE(GrantAllows(grant, P::kDecrypt, IdOf(1), &holds, 150));
  EXPECT_FALSE(GrantAllows(grant, P::kEncrypt, IdOf(2), &holds, 150));
  EXPECT_EQ(StateOf(grant, 150), GrantState::kActive);
  EXPECT_EQ(StateOf(grant, 200), GrantState::kExpired);
  EXPECT_FALSE(GrantAllows(grant, P::kEncrypt, IdOf(1), &holds, 200));
  grant.retired_at = 120;
  EXPECT_EQ(StateOf(grant, 150), GrantState::kRetired);
  EXPECT_FALSE(GrantAllows(grant, P::kEncrypt, IdOf(1), &holds, 150));
}

class ResourcePolicyTest : public ::testing::Test {
 protected:
  ResourcePolicyTest() {
    std::vector<GrantRecord> grants = {{.id = "0123456789abcdef",
                                        .tenant = "acme",
                                        .principal = "app",
                                        .key_id = IdOf(9),
                                        .operations = {"generate-data-key"},
                                        .context = {},
                                        .created_at = 0,
                                        .expires_at = std::nullopt,
                                        .retired_at = std::nullopt}};
    app_.access = AccessOf(
        {"clerk"},
        Catalog({Role("clerk", {}, {"crypto:encrypt@key/orders", "crypto:decrypt@alias/cur"})}),
        std::move(grants));
  }

  ResourceFacts Key(std::string_view name, uint8_t id, std::vector<std::string>* aliases) {
    ResourceFacts facts;
    facts.kind = Resource::kKey;
    facts.name = name;
    facts.key_id = IdOf(id);
    facts.aliases = *aliases;
    return facts;
  }

  AccessPolicy policy_{
      AccessPolicyOptions{.admins = {{0}, {}}, .api_key_peers = {}, .is_bound_peer = {}}};
  PrincipalIdentity app_{.tenant = "acme",
                         .name = "app",
                         .api_key_id = "0123456789abcdef",
                         .session_id = {},
                         .mfa = false,
                         .permissions = *TenantRolePermissions("viewer"),
                         .access = nullptr};
  Peer peer_{.uid = 1001, .gid = 1001, .pid = 7};
  std::vector<std::string> no_aliases_;
  std::vector<std::string> cur_{"alias/cur"};
};

TEST_F(ResourcePolicyTest, IntakeLetsInWhatSomeResourceAllowsAndMarksItPending) {
  bool pending = false;
  EXPECT_TRUE(
      policy_.Authorize(peer_, &app_, "encrypt", P::kEncrypt, "acme", Resource::kKey, &pending)
          .ok());
  EXPECT_TRUE(pending);
  pending = false;
  EXPECT_TRUE(
      policy_.Authorize(peer_, &app_, "key.describe", P::kKeyRead, "acme", Resource::kKey, &pending)
          .ok());
  EXPECT_FALSE(pending);  // held everywhere
  // Narrowed permissions never open tenant-wide operations.
  EXPECT_EQ(
      policy_.Authorize(peer_, &app_, "key.rotate", P::kKeyRotate, "acme", Resource::kKey, &pending)
          .code(),
      Code::kAccessDenied);
  EXPECT_EQ(
      policy_.Authorize(peer_, &app_, "encrypt", P::kEncrypt, "acme", Resource::kTenant, &pending)
          .code(),
      Code::kAccessDenied);
}

TEST_F(ResourcePolicyTest, TheResourceDecidesByKeyAliasAndGrant) {
  EXPECT_TRUE(
      policy_.AuthorizeResource(app_, "encrypt", P::kEncrypt, Key("orders", 1, &no_aliases_), 0)
          .ok());
  Status other =
      policy_.AuthorizeResource(app_, "encrypt", P::kEncrypt, Key("billing", 2, &no_aliases_), 0);
  EXPECT_EQ(other.code(), Code::kAccessDenied);
  EXPECT_THAT(other.message(), HasSubstr("key 'billing'"));
  // By alias: whichever key it names now.
  EXPECT_TRUE(
      policy_.AuthorizeResource(app_, "decrypt", P::kDecrypt, Key("billing", 2, &cur_), 0).ok());
  EXPECT_EQ(
      policy_.AuthorizeResource(app_, "decrypt", P::kDecrypt, Key("orders", 1, &no_aliases_), 0)
          .code(),
      Code::kAccessDenied);
  // By grant: that key's id only.
  EXPECT_TRUE(policy_
                  .AuthorizeResource(app_, "generate-data-key", P::kGenerateDataKey,
                                     Key("payments", 9, &no_aliases_), 0)
                  .ok());
  EXPECT_EQ(policy_
                .AuthorizeResource(app_, "generate-data-key", P::kGenerateDataKey,
                                   Key("orders", 1, &no_aliases_), 0)
                .code(),
            Code::kAccessDenied);
}

}  // namespace
}  // namespace kmsd
