// End-to-end: custom roles and grants through the real socket (issue 10).
// A role narrowed to one key or alias uses only that; inheritance works and
// cycles are refused; every bad definition has its code; grants give one key
// to one principal, bounded by encryption context and expiry, until retired;
// a manager cannot use a key it manages, grant to itself or mint a key for a
// principal it granted to; another tenant's principal gets nothing; and
// roles and grants survive a restart. The test's uid is the dev daemon's
// admin; a connection with an API key acts as that key's principal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using Strings = std::vector<std::string>;

class RolesGrantsTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    for (const char* tenant : {"acme", "globex"}) MustCall("tenant.create", tenant);
    for (const char* key : {"orders", "billing"}) {
      ASSERT_TRUE(CallOp<ops::KeyCreate>(*connection_, "acme", {.name = key, .description = {}}));
    }
  }

  Result<ops::RoleDescription> MakeRole(const std::string& tenant, const std::string& name,
                                        Strings inherits, Strings allow, Connection* as = nullptr) {
    return CallOp<ops::RoleCreate>(
        as ? *as : *connection_, tenant,
        {.name = name,
         .inherits = inherits.empty() ? std::nullopt : std::optional(inherits),
         .allow = allow.empty() ? std::nullopt : std::optional(allow)});
  }

  static Result<ops::EncryptReply> EncryptAs(Connection& as, const std::string& key,
                                             EncryptionContext context = {},
                                             const std::string& tenant = "acme") {
    const std::string plaintext = "secret of " + key;
    return CallOp<ops::Encrypt>(
        as, tenant,
        {.key = key,
         .plaintext = {reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size()},
         .context = std::move(context)});
  }

  static Result<ops::DecryptReply> DecryptAs(Connection& as, const Bytes& ciphertext,
                                             EncryptionContext context = {}) {
    return CallOp<ops::Decrypt>(
        as, "acme", {.ciphertext = ciphertext, .context = std::move(context), .key = {}});
  }

  Bytes AdminCiphertext(const std::string& key, EncryptionContext context = {}) {
    auto encrypted = EncryptAs(*connection_, key, std::move(context));
    EXPECT_TRUE(encrypted) << encrypted.error();
    return encrypted ? encrypted->ciphertext : Bytes{};
  }

  Result<ops::GrantDescription> MakeGrant(Connection& as, const std::string& key,
                                          const std::string& principal, Strings operations,
                                          std::optional<EncryptionContext> context = std::nullopt,
                                          std::optional<uint64_t> expires_in = std::nullopt) {
    return CallOp<ops::GrantCreate>(as, "acme",
                                    {.key = key,
                                     .principal = principal,
                                     .operations = std::move(operations),
                                     .expires_in_seconds = expires_in,
                                     .context = std::move(context)});
  }
};

template <typename T>
std::string MessageOf(const Result<T>& result) {
  return result ? std::string() : result.error().message();
}

TEST_F(RolesGrantsTest, ARoleNarrowedToOneKeyUsesThatKeyOnly) {
  ASSERT_TRUE(MakeRole(
      "acme", "orders-clerk", {},
      {"crypto:encrypt@key/orders", "crypto:decrypt@key/orders", "key:rotate@key/orders"}));
  auto clerk = Principal("acme", "clerk", {"orders-clerk"});
  const Bytes billing_ciphertext = AdminCiphertext("billing");

  auto encrypted = EncryptAs(*clerk, "orders");
  ASSERT_TRUE(encrypted) << encrypted.error();
  EXPECT_TRUE(DecryptAs(*clerk, encrypted->ciphertext));
  auto other = EncryptAs(*clerk, "billing");
  EXPECT_EQ(CodeOf(other), Code::kAccessDenied);
  EXPECT_THAT(MessageOf(other), HasSubstr("key 'billing'"));
  EXPECT_THAT(MessageOf(other), HasSubstr("'crypto:encrypt'"));
  EXPECT_EQ(CodeOf(DecryptAs(*clerk, billing_ciphertext)), Code::kAccessDenied);

  // Lifecycle operations are narrowed too; and nothing beyond the statements.
  EXPECT_TRUE(CallOp<ops::KeyRotate>(*clerk, "acme", {.key = "orders"}));
  EXPECT_EQ(CodeOf(CallOp<ops::KeyRotate>(*clerk, "acme", {.key = "billing"})),
            Code::kAccessDenied);
  EXPECT_EQ(CodeOf(CallOp<ops::KeyDescribe>(*clerk, "acme", {.key = "orders"})),
            Code::kAccessDenied);
  EXPECT_EQ(CodeOf(CallOp<ops::KeyList>(*clerk, "acme", {})), Code::kAccessDenied);
  // A key that does not exist is NOT_FOUND (within the principal's tenant).
  EXPECT_EQ(CodeOf(EncryptAs(*clerk, "nope")), Code::kNotFound);

  // Re-encrypting into billing needs re-encrypt-to there.
  EXPECT_EQ(CodeOf(CallOp<ops::ReEncrypt>(*clerk, "acme",
                                          {.ciphertext = encrypted->ciphertext,
                                           .context = {},
                                           .destination_key = "billing",
                                           .destination_context = std::nullopt})),
            Code::kAccessDenied);

  // In a batch, each item is decided on its own key.
  Value::Array items;
  for (const Bytes* ciphertext :
       std::array<const Bytes*, 2>{&encrypted->ciphertext, &billing_ciphertext}) {
    Value::Map item;
    item.emplace_back("ciphertext", *ciphertext);
    items.emplace_back(std::move(item));
  }
  Value::Map args;
  args.emplace_back("items", std::move(items));
  auto batch = clerk->Call("batch-decrypt", "acme", std::move(args));
  ASSERT_TRUE(batch) << batch.error();
  auto results = batch->result().Array("results");
  ASSERT_TRUE(results && results->size() == 2);
  EXPECT_TRUE(Fields::Of((*results)[0], "item")->Binary("plaintext").has_value());
  auto denied = Fields::Of((*results)[1], "item")->Map("error");
  ASSERT_TRUE(denied.has_value());
  EXPECT_EQ(*denied->String("code"), "ACCESS_DENIED");

  // A batch whose every item is refused answers each item so.
  Value::Array plaintexts;
  for (int i = 0; i < 2; ++i) {
    Value::Map item;
    item.emplace_back("plaintext", Bytes{1, 2, 3});
    plaintexts.emplace_back(std::move(item));
  }
  Value::Map batch_args;
  batch_args.emplace_back("key", "billing");
  batch_args.emplace_back("items", std::move(plaintexts));
  auto refused = clerk->Call("batch-encrypt", "acme", std::move(batch_args));
  ASSERT_TRUE(refused) << refused.error();
  auto refused_items = refused->result().Array("results");
  ASSERT_TRUE(refused_items && refused_items->size() == 2);
  for (const auto& item : *refused_items) {
    auto error = Fields::Of(item, "item")->Map("error");
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(*error->String("code"), "ACCESS_DENIED");
  }
}

TEST_F(RolesGrantsTest, AnAliasStatementFollowsTheKeyTheAliasNames) {
  ASSERT_TRUE(
      CallOp<ops::AliasCreate>(*connection_, "acme", {.alias = "alias/current", .key = "orders"}));
  ASSERT_TRUE(MakeRole("acme", "current-user", {}, {"crypto:encrypt@alias/current"}));
  auto user = Principal("acme", "app", {"current-user"});
  EXPECT_TRUE(EncryptAs(*user, "alias/current"));
  EXPECT_TRUE(EncryptAs(*user, "orders"));  // the key the alias names
  EXPECT_EQ(CodeOf(EncryptAs(*user, "billing")), Code::kAccessDenied);

  ASSERT_TRUE(
      CallOp<ops::AliasUpdate>(*connection_, "acme", {.alias = "alias/current", .key = "billing"}));
  EXPECT_TRUE(EncryptAs(*user, "billing"));
  EXPECT_EQ(CodeOf(EncryptAs(*user, "orders")), Code::kAccessDenied);

  // alias:manage on the alias alone may not point it at another key.
  ASSERT_TRUE(MakeRole("acme", "alias-keeper", {}, {"alias:manage@alias/current"}));
  auto keeper = Principal("acme", "keeper", {"alias-keeper"});
  EXPECT_EQ(CodeOf(CallOp<ops::AliasUpdate>(*keeper, "acme",
                                            {.alias = "alias/current", .key = "orders"})),
            Code::kAccessDenied);
  ASSERT_TRUE(CallOp<ops::RoleUpdate>(
      *connection_, "acme",
      {.name = "alias-keeper",
       .inherits = std::nullopt,
       .allow = Strings{"alias:manage@alias/current", "alias:manage@key/orders"}}));
  EXPECT_TRUE(
      CallOp<ops::AliasUpdate>(*keeper, "acme", {.alias = "alias/current", .key = "orders"}));
  EXPECT_EQ(
      CodeOf(CallOp<ops::AliasCreate>(*keeper, "acme", {.alias = "alias/other", .key = "orders"})),
      Code::kAccessDenied);
}

TEST_F(RolesGrantsTest, RolesInheritAndACycleIsRefusedChangingNothing) {
  ASSERT_TRUE(MakeRole("acme", "base", {"viewer"}, {"crypto:encrypt@key/orders"}));
  auto derived = MakeRole("acme", "derived", {"base"}, {"crypto:decrypt@key/orders"});
  ASSERT_TRUE(derived) << derived.error();
  EXPECT_THAT(derived->permissions, ::testing::Contains("key:read"));
  EXPECT_THAT(derived->narrowed, ::testing::Contains("crypto:encrypt@key/orders"));
  auto user = Principal("acme", "app", {"derived"});
  EXPECT_TRUE(CallOp<ops::KeyList>(*user, "acme", {}));  // viewer, through base
  auto encrypted = EncryptAs(*user, "orders");
  ASSERT_TRUE(encrypted) << encrypted.error();
  EXPECT_TRUE(DecryptAs(*user, encrypted->ciphertext));

  auto cycle = CallOp<ops::RoleUpdate>(
      *connection_, "acme", {.name = "base", .inherits = Strings{"derived"}, .allow = {}});
  EXPECT_EQ(CodeOf(cycle), Code::kInvalidArgument);
  EXPECT_THAT(MessageOf(cycle), HasSubstr("base -> derived -> base"));
  auto self = CallOp<ops::RoleUpdate>(*connection_, "acme",
                                      {.name = "base", .inherits = Strings{"base"}, .allow = {}});
  EXPECT_EQ(CodeOf(self), Code::kInvalidArgument);
  auto kept = CallOp<ops::RoleDescribe>(*connection_, "acme", {.name = "base"});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->inherits, Strings{"viewer"});
  EXPECT_TRUE(EncryptAs(*user, "orders"));

  // In use: held by a principal, inherited by a role.
  EXPECT_EQ(CodeOf(CallOp<ops::RoleDelete>(*connection_, "acme", {.name = "derived"})),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(CallOp<ops::RoleDelete>(*connection_, "acme", {.name = "base"})),
            Code::kInvalidArgument);
  ASSERT_TRUE(
      CallOp<ops::PrincipalSetRoles>(*connection_, "acme", {.name = "app", .roles = {"viewer"}}));
  EXPECT_TRUE(CallOp<ops::RoleDelete>(*connection_, "acme", {.name = "derived"}));
  EXPECT_EQ(CodeOf(CallOp<ops::RoleDescribe>(*connection_, "acme", {.name = "derived"})),
            Code::kNotFound);
  EXPECT_EQ(CodeOf(EncryptAs(*user, "orders")), Code::kAccessDenied);
}

TEST_F(RolesGrantsTest, EveryBadRoleDefinitionIsInvalidArgumentAndChangesNothing) {
  const std::vector<std::pair<Strings, Strings>> bad = {
      {{}, {}},                               // nothing at all
      {{"owner"}, {}},                        // unknown role
      {{"admin"}, {}},                        // admin is no tenant role
      {{"viewer", "viewer"}, {}},             // twice
      {{}, {"crypto:everything"}},            // unknown permission
      {{}, {"tenant:create"}},                // admins only
      {{}, {"principal:manage@key/orders"}},  // does not act on a key
      {{}, {"crypto:encrypt@keys/orders"}},   // not a resource
      {{}, {"crypto:encrypt@key/Bad Name"}},  // not a key name
      {{}, {"crypto:encrypt@alias/"}},        // not an alias
      {{}, {"bogus:*"}},                      // no such family
  };
  for (const auto& [inherits, allow] : bad) {
    auto made = MakeRole("acme", "bad", inherits, allow);
    EXPECT_EQ(CodeOf(made), Code::kInvalidArgument)
        << ::testing::PrintToString(inherits) << ::testing::PrintToString(allow);
  }
  for (const char* name : {"viewer", "admin", "Bad", ""}) {
    EXPECT_EQ(CodeOf(MakeRole("acme", name, {"viewer"}, {})), Code::kInvalidArgument) << name;
  }
  auto roles = CallOp<ops::RoleList>(*connection_, "acme", {});
  ASSERT_TRUE(roles);
  EXPECT_TRUE(roles->roles.empty());
  // A principal may hold only roles that exist.
  EXPECT_EQ(CodeOf(CallOp<ops::PrincipalCreate>(
                *connection_, "acme",
                {.name = "p", .roles = {"bad"}, .uids = std::nullopt, .gids = std::nullopt})),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(MakeRole("nope", "r", {"viewer"}, {})), Code::kNotFound);
  ASSERT_TRUE(MakeRole("acme", "r", {"viewer"}, {}));
  EXPECT_EQ(CodeOf(MakeRole("acme", "r", {"viewer"}, {})), Code::kAlreadyExists);
  EXPECT_EQ(
      CodeOf(CallOp<ops::RoleUpdate>(
          *connection_, "acme", {.name = "ghost", .inherits = Strings{"viewer"}, .allow = {}})),
      Code::kNotFound);
}

TEST_F(RolesGrantsTest, AManagerManagesRolesAndGrantsButNeverUsesOrEscalates) {
  auto manager = Principal("acme", "boss", {"manager"});
  ASSERT_TRUE(CallOp<ops::KeyCreate>(*manager, "acme", {.name = "payments", .description = {}}));
  // Separation of duties: who manages a key cannot use it.
  EXPECT_EQ(CodeOf(EncryptAs(*manager, "payments")), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(MakeGrant(*manager, "payments", "boss", {"encrypt"})), Code::kAccessDenied);
  // A role with permissions the manager lacks is escalation.
  EXPECT_EQ(CodeOf(MakeRole("acme", "user-ish", {"user"}, {}, manager.get())), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(MakeRole("acme", "enc", {}, {"crypto:encrypt@key/payments"}, manager.get())),
            Code::kAccessDenied);
  ASSERT_TRUE(MakeRole("acme", "reader", {"viewer"}, {}, manager.get()));

  // It may let another principal use the key, and not mint that one's keys.
  ASSERT_TRUE(CallOp<ops::PrincipalCreate>(
      *manager, "acme", {.name = "app", .roles = {"reader"}, .uids = {}, .gids = {}}));
  auto grant = MakeGrant(*manager, "payments", "app", {"encrypt", "decrypt"});
  ASSERT_TRUE(grant) << grant.error();
  EXPECT_EQ(grant->state, "active");
  EXPECT_EQ(grant->key_name, "payments");
  auto minted = CallOp<ops::ApiKeyCreate>(*manager, "acme",
                                          {.principal = "app", .expires_in_seconds = std::nullopt});
  EXPECT_EQ(CodeOf(minted), Code::kAccessDenied);
  EXPECT_THAT(MessageOf(minted), HasSubstr("crypto:"));
  // A manager may not change a role it holds.
  ASSERT_TRUE(MakeRole("acme", "boss-role", {"manager"}, {}));
  ASSERT_TRUE(CallOp<ops::PrincipalSetRoles>(*connection_, "acme",
                                             {.name = "boss", .roles = {"boss-role"}}));
  EXPECT_EQ(CodeOf(CallOp<ops::RoleUpdate>(
                *manager, "acme",
                {.name = "boss-role", .inherits = Strings{"manager", "reader"}, .allow = {}})),
            Code::kAccessDenied);
}

TEST_F(RolesGrantsTest, AGrantGivesOneKeyWithinItsContextUntilRetiredOrExpired) {
  auto app = Principal("acme", "app", {"viewer"});
  EXPECT_EQ(CodeOf(EncryptAs(*app, "orders")), Code::kAccessDenied);
  auto grant = MakeGrant(*connection_, "orders", "app", {"encrypt", "decrypt"},
                         EncryptionContext{{"purpose", "billing"}});
  ASSERT_TRUE(grant) << grant.error();

  const EncryptionContext good{{"purpose", "billing"}, {"order", "42"}};
  auto encrypted = EncryptAs(*app, "orders", good);
  ASSERT_TRUE(encrypted) << encrypted.error();
  EXPECT_TRUE(DecryptAs(*app, encrypted->ciphertext, good));
  EXPECT_EQ(CodeOf(EncryptAs(*app, "orders", {{"purpose", "other"}})), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(EncryptAs(*app, "orders")), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(EncryptAs(*app, "billing", good)), Code::kAccessDenied);
  // generate-data-key was not granted.
  EXPECT_EQ(CodeOf(CallOp<ops::GenerateDataKey>(*app, "acme",
                                                {.key = "orders",
                                                 .context = good,
                                                 .key_spec = std::nullopt,
                                                 .number_of_bytes = std::nullopt})),
            Code::kAccessDenied);

  auto listed = CallOp<ops::GrantList>(*connection_, "acme", {.key = "orders", .principal = {}});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->grants.size(), 1u);
  EXPECT_EQ(listed->grants[0].context, (EncryptionContext{{"purpose", "billing"}}));

  auto retired = CallOp<ops::GrantRetire>(*connection_, "acme", {.id = grant->id});
  ASSERT_TRUE(retired);
  EXPECT_EQ(retired->state, "retired");
  EXPECT_EQ(CodeOf(EncryptAs(*app, "orders", good)), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(DecryptAs(*app, encrypted->ciphertext, good)), Code::kAccessDenied);

  auto short_lived = MakeGrant(*connection_, "orders", "app", {"encrypt"}, std::nullopt, 1);
  ASSERT_TRUE(short_lived);
  EXPECT_TRUE(EncryptAs(*app, "orders"));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_EQ(CodeOf(EncryptAs(*app, "orders")), Code::kAccessDenied);
  auto expired = CallOp<ops::GrantList>(*connection_, "acme", {.key = {}, .principal = "app"});
  ASSERT_TRUE(expired);
  ASSERT_EQ(expired->grants.size(), 2u);
  for (const auto& g : expired->grants) EXPECT_NE(g.state, "active") << g.id;
}

TEST_F(RolesGrantsTest, EveryBadGrantHasItsCode) {
  AddPrincipal("acme", "app", {"viewer"});
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "app", {})), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "app", {"fly"})), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "app", {"encrypt", "encrypt"})),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "app", {"encrypt"}, std::nullopt, 0)),
            Code::kInvalidArgument);
  EncryptionContext too_many;
  for (int i = 0; i < 9; ++i) too_many["k" + std::to_string(i)] = "v";
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "app", {"encrypt"}, too_many)),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "nope", "app", {"encrypt"})), Code::kNotFound);
  EXPECT_EQ(CodeOf(MakeGrant(*connection_, "orders", "ghost", {"encrypt"})), Code::kNotFound);
  EXPECT_EQ(CodeOf(CallOp<ops::GrantRetire>(*connection_, "acme", {.id = "0123456789abcdef"})),
            Code::kNotFound);
  auto none = CallOp<ops::GrantList>(*connection_, "acme", {.key = {}, .principal = {}});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->grants.empty());
}

TEST_F(RolesGrantsTest, AnotherTenantsPrincipalGetsNothingAndLearnsNothing) {
  auto grant = MakeGrant(*connection_, "orders", "app", {"encrypt"});
  ASSERT_EQ(CodeOf(grant), Code::kNotFound);  // no principal app yet
  AddPrincipal("acme", "app", {"viewer"});
  grant = MakeGrant(*connection_, "orders", "app", {"encrypt"});
  ASSERT_TRUE(grant);
  auto outsider = Principal("globex", "boss", {"manager"});
  for (const std::string tenant : {"acme", "nowhere"}) {
    auto role = CallOp<ops::RoleList>(*outsider, tenant, {});
    EXPECT_EQ(CodeOf(role), Code::kAccessDenied) << tenant;
    EXPECT_THAT(MessageOf(role), HasSubstr("acts in its own tenant only"));
    EXPECT_EQ(CodeOf(CallOp<ops::GrantList>(*outsider, tenant, {.key = {}, .principal = {}})),
              Code::kAccessDenied);
  }
  // In its own tenant, acme's grant id is no more found than a made-up one.
  auto foreign = CallOp<ops::GrantRetire>(*outsider, "globex", {.id = grant->id});
  auto made_up = CallOp<ops::GrantRetire>(*outsider, "globex", {.id = "0123456789abcdef"});
  EXPECT_EQ(CodeOf(foreign), Code::kNotFound);
  EXPECT_EQ(MessageOf(foreign).size(), MessageOf(made_up).size());
  // A role naming "orders" in globex gives nothing in acme.
  ASSERT_TRUE(MakeRole("globex", "x", {}, {"crypto:encrypt@key/orders"}));
  auto globex_user = Principal("globex", "u", {"x"});
  EXPECT_EQ(CodeOf(EncryptAs(*globex_user, "orders", {}, "acme")), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(EncryptAs(*globex_user, "orders", {}, "globex")), Code::kNotFound);
}

TEST_F(RolesGrantsTest, RolesAndGrantsSurviveARestart) {
  ASSERT_TRUE(MakeRole("acme", "clerk", {"viewer"}, {"crypto:encrypt@key/orders"}));
  AddPrincipal("acme", "app", {"viewer"});
  auto grant =
      MakeGrant(*connection_, "billing", "app", {"encrypt"}, EncryptionContext{{"a", "b"}});
  ASSERT_TRUE(grant);
  auto clerk = Principal("acme", "clerk-1", {"clerk"});
  auto key = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                       {.principal = "app", .expires_in_seconds = std::nullopt});
  ASSERT_TRUE(key);
  const std::string app_secret = SecretText(key->secret);

  clerk.reset();
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();

  auto role = CallOp<ops::RoleDescribe>(*connection_, "acme", {.name = "clerk"});
  ASSERT_TRUE(role) << role.error();
  EXPECT_EQ(role->allow, Strings{"crypto:encrypt@key/orders"});
  auto grants = CallOp<ops::GrantList>(*connection_, "acme", {.key = {}, .principal = {}});
  ASSERT_TRUE(grants);
  ASSERT_EQ(grants->grants.size(), 1u);
  EXPECT_EQ(grants->grants[0].id, grant->id);
  EXPECT_EQ(grants->grants[0].context, (EncryptionContext{{"a", "b"}}));
  auto app = Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(10000),
                              kDefaultMaxRequestBytes, SecretBuffer::CopyOf(app_secret));
  ASSERT_TRUE(app);
  EXPECT_TRUE(EncryptAs(**app, "billing", {{"a", "b"}}));
  EXPECT_EQ(CodeOf(EncryptAs(**app, "billing")), Code::kAccessDenied);
}

}  // namespace
}  // namespace kmsd::testing
