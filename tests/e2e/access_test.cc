// End-to-end: tenant principals, their roles and API keys, through the real
// socket (issue 10). Every operation as every built-in role; every tenant
// operation of one tenant's principal against another tenant, with the same
// answer whether that tenant exists or not; separation of duties; revoked,
// expired, wrong and malformed keys; principals bound to peers; peers that
// may only connect to present a key; and a copy of the keystore and the log
// that hold no usable secret. Unprivileged peers are kmsctl under setpriv as
// `nobody` (the tests run as root, an admin).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "client/typed_call.h"
#include "policy/roles.h"
#include "protocol/access_types.h"
#include "protocol/operations.h"
#include "tests/e2e/cli_exit_codes.h"
#include "tests/e2e/hostile_support.h"
#include "tests/support/audit_log_files.h"
#include "tests/support/files.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kNobodyUid = 65534;

std::string SecretText(const SecretBuffer& secret) {
  return std::string(reinterpret_cast<const char*>(secret.RevealData()), secret.size());
}

// A host whose socket `nobody` can reach, the test's uid its admin, with two
// tenants.
class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override { chmod(host_.dir().path().c_str(), 0755); }

  void Start(const std::string& api_key_peer_uids = "", int64_t first_lockout_ms = 0) {
    ConfigOptions options;
    options.first_lockout_ms = first_lockout_ms;
    options.admin_uids = "[" + std::to_string(getuid()) + "]";
    options.socket_mode = "0666";
    options.api_key_peer_uids = api_key_peer_uids;
    daemon_ = host_.Start(options);
    admin_ = daemon_->Connect();
    for (const char* tenant : {"acme", "globex"}) {
      ASSERT_TRUE(admin_->Call("tenant.create", tenant)) << tenant;
    }
  }

  ops::PrincipalDescription MakePrincipal(const std::string& tenant, const std::string& name,
                                          std::vector<std::string> roles,
                                          std::vector<uint64_t> uids = {}) {
    ops::PrincipalCreateRequest request{
        .name = name, .roles = std::move(roles), .uids = std::nullopt, .gids = std::nullopt};
    if (!uids.empty()) request.uids = std::move(uids);
    auto created = CallOp<ops::PrincipalCreate>(*admin_, tenant, std::move(request));
    EXPECT_TRUE(created) << created.error();
    return created ? std::move(*created) : ops::PrincipalDescription{};
  }

  ops::ApiKeyCreateReply MakeKey(const std::string& tenant, const std::string& principal,
                                 std::optional<uint64_t> expires_in = std::nullopt) {
    auto key = CallOp<ops::ApiKeyCreate>(
        *admin_, tenant, {.principal = principal, .expires_in_seconds = expires_in});
    EXPECT_TRUE(key) << key.error();
    return key ? std::move(*key) : ops::ApiKeyCreateReply{};
  }

  // A connection whose calls carry `secret`.
  std::unique_ptr<Connection> As(const std::string& secret) {
    auto connection = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(10000),
                                       kDefaultMaxRequestBytes, SecretBuffer::CopyOf(secret));
    EXPECT_TRUE(connection) << connection.error();
    return std::move(*connection);
  }

  // A principal of `tenant` with `roles` and a connection that uses its key.
  std::unique_ptr<Connection> Principal(const std::string& tenant, const std::string& name,
                                        std::vector<std::string> roles) {
    MakePrincipal(tenant, name, std::move(roles));
    return As(SecretText(MakeKey(tenant, name).secret));
  }

  CommandResult KmsctlAsNobody(const std::vector<std::string>& args, const std::string& secret) {
    std::vector<std::string> argv = {"/usr/bin/setpriv",  "--reuid=nobody", "--regid=nogroup",
                                     "--clear-groups",    KMSCTL_BINARY,    "--socket",
                                     host_.socket_path(), "--timeout",      "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env;
    if (!secret.empty()) env["KMSD_API_KEY"] = secret;
    return RunCommand(argv, "", env);
  }

  ConfiguredHost host_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Connection> admin_;
};

Value::Array Roles(std::initializer_list<const char*> names) {
  Value::Array roles;
  for (const char* name : names) roles.emplace_back(name);
  return roles;
}

// The request of `op` with no arguments: enough to be authorized (a missing
// argument is INVALID_ARGUMENT after the decision, never a change).
Status CallBare(Connection& connection, const OperationInfo& op, std::string_view tenant) {
  auto reply = connection.Call(op.name, op.needs_tenant ? tenant : std::string_view{});
  return reply ? OkStatus() : reply.error();
}

TEST_F(AccessTest, EveryOperationAsEveryBuiltInRoleIsDecidedByTheRolesPermissions) {
  Start();
  for (std::string_view role : TenantRoleNames()) {
    auto connection = Principal("acme", "as-" + std::string(role), {std::string(role)});
    const PermissionSet allowed = *TenantRolePermissions(role);
    for (const OperationInfo& op : Operations()) {
      Status status = CallBare(*connection, op, "acme");
      const bool may = allowed.test(static_cast<size_t>(op.permission));
      if (may) {
        EXPECT_NE(status.code(), Code::kAccessDenied) << role << " " << op.name << ": " << status;
      } else {
        EXPECT_EQ(status.code(), Code::kAccessDenied) << role << " " << op.name << ": " << status;
        EXPECT_THAT(status.message(),
                    HasSubstr("'" + std::string(PermissionName(op.permission)) + "'"))
            << role << " " << op.name;
      }
    }
  }
}

TEST_F(AccessTest, BuiltInRolesMatchTheSeeds) {
  Start();
  auto user = Principal("acme", "app", {"user"});
  auto manager = Principal("acme", "ops", {"manager"});
  auto viewer = Principal("acme", "audit", {"viewer"});
  EXPECT_TRUE(user->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin("x"))));
  EXPECT_EQ(user->Call("key.create", "acme", MapOf("name", "k1")).error().code(),
            Code::kAccessDenied);
  EXPECT_TRUE(manager->Call("key.create", "acme", MapOf("name", "k1")));
  EXPECT_TRUE(manager->Call("principal.list", "acme"));
  EXPECT_TRUE(viewer->Call("key.describe", "acme", MapOf("key", "k1")));
  EXPECT_TRUE(viewer->Call("apikey.list", "acme"));
  for (Connection* c : {manager.get(), viewer.get()}) {
    auto denied = c->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin("x")));
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().code(), Code::kAccessDenied);
    EXPECT_THAT(denied.error().message(), HasSubstr("'crypto:encrypt'"));
  }
  EXPECT_EQ(viewer->Call("key.rotate", "acme", MapOf("key", "k1")).error().code(),
            Code::kAccessDenied);
  EXPECT_EQ(manager->Call("tenant.list").error().code(), Code::kAccessDenied);
  EXPECT_EQ(manager->Call("keystore.backup", "", MapOf("path", "x")).error().code(),
            Code::kAccessDenied);
}

TEST_F(AccessTest, APrincipalReachesNoOtherTenantAndLearnsNothingAboutIt) {
  Start();
  auto outsider = Principal("globex", "intruder", {"manager", "user"});
  const std::string before = Snapshot(*admin_).value();
  for (const OperationInfo& op : Operations()) {
    if (!op.needs_tenant) continue;
    Status existing = CallBare(*outsider, op, "acme");
    Status missing = CallBare(*outsider, op, "no-such-tenant");
    EXPECT_EQ(existing.code(), Code::kAccessDenied) << op.name << ": " << existing;
    EXPECT_EQ(missing.code(), Code::kAccessDenied) << op.name << ": " << missing;
    std::string shown = existing.message();
    shown.replace(shown.find("'acme'"), 6, "'no-such-tenant'");
    EXPECT_EQ(shown, missing.message()) << op.name;
  }
  EXPECT_EQ(Snapshot(*admin_).value(), before);
}

TEST_F(AccessTest, WhoManagesAKeyNeedsAUserRoleToUseIt) {
  Start();
  auto manager = Principal("acme", "keeper", {"manager"});
  ASSERT_TRUE(manager->Call("key.create", "acme", MapOf("name", "payroll")));
  auto denied = manager->Call("encrypt", "acme", MapOf("key", "payroll", "plaintext", Bin("x")));
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), Code::kAccessDenied);
  auto roles = CallOp<ops::PrincipalSetRoles>(*admin_, "acme",
                                              {.name = "keeper", .roles = {"manager", "user"}});
  ASSERT_TRUE(roles) << roles.error();
  EXPECT_TRUE(manager->Call("encrypt", "acme", MapOf("key", "payroll", "plaintext", Bin("x"))));
}

// A manager who could grant itself (or a principal it controls) use would
// make separation of duties a formality: it may grant only what it holds.
TEST_F(AccessTest, AManagerCannotGrantItselfOrOthersTheUseOfKeys) {
  Start();
  auto manager = Principal("acme", "keeper", {"manager"});
  MakePrincipal("acme", "app", {"user"});
  const std::string before = Snapshot(*admin_).value();
  auto expect_denied = [](const Result<Reply>& reply, const std::string& needle) {
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().code(), Code::kAccessDenied) << reply.error();
    EXPECT_THAT(reply.error().message(), HasSubstr(needle));
  };
  expect_denied(manager->Call("principal.set-roles", "acme",
                              MapOf("name", "keeper", "roles", Roles({"viewer"}))),
                "may not change its own roles");
  expect_denied(
      manager->Call("principal.create", "acme", MapOf("name", "puppet", "roles", Roles({"user"}))),
      "'crypto:encrypt'");
  expect_denied(manager->Call("principal.set-roles", "acme",
                              MapOf("name", "app", "roles", Roles({"user", "manager"}))),
                "'crypto:");
  expect_denied(manager->Call("apikey.create", "acme", MapOf("principal", "app")),
                "create an API key of principal 'app'");
  EXPECT_EQ(Snapshot(*admin_).value(), before);
  EXPECT_EQ(CallOp<ops::PrincipalDescribe>(*admin_, "acme", {.name = "puppet"}).error().code(),
            Code::kNotFound);
  EXPECT_TRUE(CallOp<ops::ApiKeyList>(*admin_, "acme", {.principal = "app"})->api_keys.empty());
  // What it holds it may grant: a viewer, and that viewer's key.
  EXPECT_TRUE(manager->Call("principal.create", "acme",
                            MapOf("name", "reader", "roles", Roles({"viewer"}))));
  EXPECT_TRUE(manager->Call("apikey.create", "acme", MapOf("principal", "reader")));
  EXPECT_TRUE(manager->Call("apikey.create", "acme", MapOf("principal", "keeper")));
}

TEST_F(AccessTest, RevokedExpiredWrongAndMalformedKeysAreRefused) {
  Start();
  MakePrincipal("acme", "app", {"user"});
  const std::string secret = SecretText(MakeKey("acme", "app").secret);
  ASSERT_TRUE(std::regex_match(secret, std::regex("kmsd_ak_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")))
      << secret;
  auto app = As(secret);
  ASSERT_TRUE(app->Call("status"));

  std::string wrong = secret;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  std::string unknown_id = secret;
  unknown_id[8] = unknown_id[8] == '0' ? '1' : '0';
  for (const std::string& bad : {wrong, unknown_id, secret.substr(0, 20), std::string("x"),
                                 secret + "x", std::string(secret.size(), 'a')}) {
    auto refused = As(bad)->Call("status");
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
    EXPECT_EQ(refused.error().message(), "the API key is not valid");
  }

  const std::string id = secret.substr(8, 16);
  ASSERT_TRUE(CallOp<ops::ApiKeyRevoke>(*admin_, "acme", {.id = id}));
  auto revoked = app->Call("status");
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code(), Code::kAccessDenied);
  EXPECT_THAT(revoked.error().message(), HasSubstr("revoked"));

  // Expiry counts whole seconds: 2 s leaves at least one to prove the secret in.
  auto short_lived = As(SecretText(MakeKey("acme", "app", 2).secret));
  ASSERT_TRUE(short_lived->Call("status"));
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));
  auto expired = short_lived->Call("status");
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code(), Code::kAccessDenied);
  EXPECT_THAT(expired.error().message(), HasSubstr("expired"));

  auto listed = CallOp<ops::ApiKeyList>(*admin_, "acme", {});
  ASSERT_TRUE(listed) << listed.error();
  ASSERT_EQ(listed->api_keys.size(), 2u);
  std::map<std::string, std::string> states;
  for (const auto& key : listed->api_keys) states[key.id] = key.state;
  EXPECT_EQ(states[id], "revoked");
}

TEST_F(AccessTest, DeletingAPrincipalRevokesItsKeysAndBadRequestsChangeNothing) {
  Start();
  auto app = Principal("acme", "app", {"user"});
  ASSERT_TRUE(app->Call("status"));
  auto dup = CallOp<ops::PrincipalCreate>(
      *admin_, "acme", {.name = "app", .roles = {"user"}, .uids = {}, .gids = {}});
  EXPECT_EQ(dup.error().code(), Code::kAlreadyExists);
  for (std::vector<std::string> roles :
       std::vector<std::vector<std::string>>{{}, {"admin"}, {"root"}, {"user", "user"}}) {
    auto bad = CallOp<ops::PrincipalCreate>(*admin_, "acme",
                                            {.name = "x", .roles = roles, .uids = {}, .gids = {}});
    EXPECT_EQ(bad.error().code(), Code::kInvalidArgument) << ::testing::PrintToString(roles);
  }
  auto bad_name = CallOp<ops::PrincipalCreate>(
      *admin_, "acme", {.name = "Bad Name", .roles = {"user"}, .uids = {}, .gids = {}});
  EXPECT_EQ(bad_name.error().code(), Code::kInvalidArgument);
  auto missing_tenant = CallOp<ops::PrincipalCreate>(
      *admin_, "nowhere", {.name = "x", .roles = {"user"}, .uids = {}, .gids = {}});
  EXPECT_EQ(missing_tenant.error().code(), Code::kNotFound);
  EXPECT_EQ(
      CallOp<ops::ApiKeyCreate>(*admin_, "acme", {.principal = "ghost", .expires_in_seconds = {}})
          .error()
          .code(),
      Code::kNotFound);
  EXPECT_EQ(
      CallOp<ops::ApiKeyCreate>(*admin_, "acme", {.principal = "app", .expires_in_seconds = 0})
          .error()
          .code(),
      Code::kInvalidArgument);
  EXPECT_EQ(CallOp<ops::ApiKeyRevoke>(*admin_, "acme", {.id = "0123456789abcdef"}).error().code(),
            Code::kNotFound);
  auto listed = CallOp<ops::PrincipalList>(*admin_, "acme", {});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->principals.size(), 1u);

  ASSERT_TRUE(CallOp<ops::PrincipalDelete>(*admin_, "acme", {.name = "app"}));
  auto gone = app->Call("status");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), Code::kAccessDenied);
  EXPECT_EQ(CallOp<ops::PrincipalDescribe>(*admin_, "acme", {.name = "app"}).error().code(),
            Code::kNotFound);
}

TEST_F(AccessTest, APrincipalBoundToPeersIsAcceptedFromThoseAlone) {
  Start();
  MakePrincipal("acme", "batch", {"user"}, {kNobodyUid});
  const std::string secret = SecretText(MakeKey("acme", "batch").secret);
  // Root holds the key, but the principal is nobody's.
  auto from_root = As(secret)->Call("status");
  ASSERT_FALSE(from_root);
  EXPECT_EQ(from_root.error().code(), Code::kAccessDenied);
  EXPECT_THAT(from_root.error().message(), HasSubstr("bound to other peers"));
  // nobody may connect (a principal is bound to it) and is that principal.
  CommandResult ok = KmsctlAsNobody({"random", "--bytes", "8"}, secret);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  // Without the key nobody is nobody.
  CommandResult bare = KmsctlAsNobody({"status"}, "");
  EXPECT_EQ(bare.exit_code, kAccessDeniedExit) << bare.out << bare.err;
}

TEST_F(AccessTest, APeerNeitherAdminNorBoundNorListedIsRefusedAtConnection) {
  Start();
  MakePrincipal("acme", "app", {"user"});
  const std::string secret = SecretText(MakeKey("acme", "app").secret);
  CommandResult refused = KmsctlAsNobody({"status"}, secret);
  EXPECT_EQ(refused.exit_code, kAccessDeniedExit) << refused.out << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("closed the connection"));
}

// Guessed API keys lock the guessing peer out (nobody, here), with an
// alert; the admin is never held; the lockout ends after its delay.
TEST_F(AccessTest, GuessingKeysLocksThePeerOutWithAnAlert) {
  // A first lockout of 5 s: room for a slow machine to see it.
  Start("[" + std::to_string(kNobodyUid) + "]", 5000);
  MakePrincipal("acme", "app", {"user"});
  const std::string secret = SecretText(MakeKey("acme", "app").secret);
  ASSERT_EQ(KmsctlAsNobody({"random", "--bytes", "8"}, secret).exit_code, 0);
  for (int i = 0; i < 5; ++i) {
    std::string guess = secret;
    guess[guess.size() - 1 - i] = guess[guess.size() - 1 - i] == 'A' ? 'B' : 'A';
    CommandResult refused = KmsctlAsNobody({"random", "--bytes", "8"}, guess);
    EXPECT_EQ(refused.exit_code, kAccessDeniedExit) << refused.err;
    EXPECT_THAT(refused.err, HasSubstr("not valid")) << i;
  }
  // Locked out: the good key is refused too, before it is looked at.
  CommandResult locked = KmsctlAsNobody({"--json", "random", "--bytes", "8"}, secret);
  EXPECT_EQ(locked.exit_code, kAccessDeniedExit);
  EXPECT_THAT(locked.out, HasSubstr("uid 65534 is locked out"));
  EXPECT_THAT(locked.out, HasSubstr("retry_after_ms"));
  EXPECT_TRUE(admin_->Call("status"));
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("ALERT: uid 65534 locked out after 5 failed attempts"));
  EXPECT_THAT(daemon_->ReadLog(), Not(HasSubstr(secret)));
  std::this_thread::sleep_for(std::chrono::milliseconds(5200));
  CommandResult again = KmsctlAsNobody({"random", "--bytes", "8"}, secret);
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(AccessTest, AListedPeerMayPresentAKeyAndIsThenItsPrincipal) {
  Start("[" + std::to_string(kNobodyUid) + "]");
  MakePrincipal("acme", "app", {"user"});
  const std::string secret = SecretText(MakeKey("acme", "app").secret);
  CommandResult served = KmsctlAsNobody({"random", "--bytes", "8"}, secret);
  EXPECT_EQ(served.exit_code, 0) << served.out << served.err;
  CommandResult no_key = KmsctlAsNobody({"status"}, "");
  EXPECT_EQ(no_key.exit_code, kAccessDeniedExit) << no_key.out << no_key.err;
  EXPECT_THAT(no_key.err, HasSubstr("carries no API key"));
  CommandResult other_tenant = KmsctlAsNobody({"key", "list", "--tenant", "globex"}, secret);
  EXPECT_EQ(other_tenant.exit_code, kAccessDeniedExit) << other_tenant.out << other_tenant.err;
}

TEST_F(AccessTest, NeitherTheKeystoreNorTheLogHoldsAUsableSecret) {
  Start();
  MakePrincipal("acme", "app", {"user"});
  const std::string secret = SecretText(MakeKey("acme", "app").secret);
  auto app = As(secret);
  ASSERT_TRUE(app->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin("x"))));
  auto listed = CallOp<ops::ApiKeyList>(*admin_, "acme", {.principal = "app"});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->api_keys.size(), 1u);
  EXPECT_EQ(listed->api_keys[0].state, "active");
  EXPECT_TRUE(listed->api_keys[0].last_used_at.has_value());
  daemon_->Stop();  // the keystore's WAL is checkpointed or left: read both

  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), sha);
  const std::string sha_bytes(reinterpret_cast<const char*>(sha), sizeof sha);
  const std::string random_part = secret.substr(25);
  for (const std::string& path :
       {std::string(host_.dir() / "keystore.db"), std::string(host_.dir() / "keystore.db-wal")}) {
    const std::string bytes = ReadFileBytes(path);
    EXPECT_EQ(bytes.find(random_part), std::string::npos) << path;
    EXPECT_EQ(bytes.find(sha_bytes), std::string::npos) << path;
  }
  // The id is there, the secret is not.
  EXPECT_THAT(
      ReadFileBytes(host_.dir() / "keystore.db") + ReadFileBytes(host_.dir() / "keystore.db-wal"),
      HasSubstr(secret.substr(8, 16)));
  const std::string log = daemon_->ReadLog();
  EXPECT_THAT(log, Not(HasSubstr(random_part)));
  EXPECT_THAT(log, Not(HasSubstr(sha_bytes)));
  // The audit log names the principal and its key's id, never the secret.
  std::string audit;
  for (const auto& [name, lines] : ReadAuditLines(host_.dir() / "audit")) {
    for (const std::string& line : lines) audit += line + "\n";
  }
  EXPECT_THAT(audit, HasSubstr("\"name\":\"app\""));
  EXPECT_THAT(audit, HasSubstr("\"api_key_id\":\"" + secret.substr(8, 16) + "\""));
  EXPECT_THAT(audit, Not(HasSubstr(random_part)));
  EXPECT_THAT(audit, Not(HasSubstr(sha_bytes)));
}

}  // namespace
}  // namespace kmsd::testing
