// End-to-end: kmsctl's principal, apikey, role and grant commands and its API key input
// ($KMSD_API_KEY, --api-key-file) against a real kmsd (docs/CLI.md). The
// test's uid is the dev daemon's admin; with an API key its kmsctl runs are
// the key's principal's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/e2e/cli_exit_codes.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

const std::regex kSecretPattern("kmsd_ak_[0-9a-f]{16}_[A-Za-z0-9_-]{43}");

class KmsctlAccessTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
  }

  // kmsctl --socket SOCKET args..., with `env` added to the environment.
  CommandResult Kmsctl(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {},
                       const std::string& input = "") {
    return RunKmsctl(daemon_->socket_path(), args, input, env);
  }

  json KmsctlJson(const std::vector<std::string>& args) {
    std::vector<std::string> with_json = {"--json"};
    with_json.insert(with_json.end(), args.begin(), args.end());
    CommandResult result = Kmsctl(with_json);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }

  void MakePrincipal(const std::string& name, const std::string& role) {
    CommandResult created =
        Kmsctl({"principal", "create", "--tenant", "acme", name, "--role", role});
    ASSERT_EQ(created.exit_code, 0) << created.err;
  }

  // A new key of `principal`, its secret read from the text output.
  std::string MakeKey(const std::string& principal, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"apikey", "create",      "--tenant",
                                     "acme",   "--principal", principal};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult created = Kmsctl(args);
    EXPECT_EQ(created.exit_code, 0) << created.err;
    std::smatch match;
    if (!std::regex_search(created.out, match, kSecretPattern)) {
      ADD_FAILURE() << "no secret in: " << created.out;
      return "";
    }
    return match.str();
  }

  // A file holding `content`, with `mode`.
  std::string KeyFile(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ / name;
    std::ofstream(path) << content;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  CommandResult EncryptWithEnvironment(const std::string& secret) {
    return Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data"},
                  {{"KMSD_API_KEY", secret}}, "plaintext");
  }

  CommandResult EncryptWithFile(const std::string& path,
                                const std::map<std::string, std::string>& env = {}) {
    return Kmsctl({"--api-key-file", path, "encrypt", "--tenant", "acme", "--key", "alias/data"},
                  env, "plaintext");
  }
};

TEST_F(KmsctlAccessTest, PrincipalsAreCreatedListedDescribedChangedAndDeleted) {
  json created =
      KmsctlJson({"principal", "create", "--tenant", "acme", "app", "--role", "user", "--role",
                  "viewer", "--uid", "1000", "--uid", "1001", "--gid", "2000"});
  EXPECT_EQ(created["tenant"], "acme");
  EXPECT_EQ(created["name"], "app");
  EXPECT_EQ(created["roles"], json({"user", "viewer"}));
  EXPECT_EQ(created["uids"], json({1000, 1001}));
  EXPECT_EQ(created["gids"], json({2000}));
  CommandResult text =
      Kmsctl({"principal", "create", "--tenant", "acme", "ops", "--role", "manager"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("name: ops\n"));
  EXPECT_THAT(text.out, HasSubstr("roles: manager\n"));
  EXPECT_THAT(text.out, HasSubstr("uids: -\n"));

  json list = KmsctlJson({"principal", "list", "--tenant", "acme"});
  ASSERT_EQ(list["principals"].size(), 2u);
  CommandResult table = Kmsctl({"principal", "list", "--tenant", "acme"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("NAME  ROLES"));
  EXPECT_THAT(table.out, HasSubstr("user, viewer"));
  EXPECT_THAT(table.out, HasSubstr("1000, 1001"));

  EXPECT_EQ(KmsctlJson({"principal", "describe", "--tenant", "acme", "ops"})["roles"],
            json({"manager"}));
  json changed = KmsctlJson(
      {"principal", "set-roles", "--tenant", "acme", "ops", "--role", "viewer", "--role", "user"});
  EXPECT_EQ(changed["roles"], json({"viewer", "user"}));
  EXPECT_EQ(KmsctlJson({"principal", "describe", "--tenant", "acme", "ops"})["roles"],
            json({"viewer", "user"}));

  CommandResult deleted = Kmsctl({"principal", "delete", "--tenant", "acme", "ops"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "");
  EXPECT_EQ(KmsctlJson({"principal", "delete", "--tenant", "acme", "app"}), json::object());
  CommandResult gone = Kmsctl({"principal", "describe", "--tenant", "acme", "ops"});
  EXPECT_EQ(gone.exit_code, ExitCodeFor(Code::kNotFound));
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(KmsctlJson({"principal", "list", "--tenant", "acme"})["principals"].size(), 0u);
}

TEST_F(KmsctlAccessTest, ApiKeyCreateShowsTheSecretOnceAndListNeverShowsIt) {
  MakePrincipal("app", "user");
  CommandResult text =
      Kmsctl({"apikey", "create", "--tenant", "acme", "--principal", "app", "--expires-in", "90d"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(text.out, match, kSecretPattern)) << text.out;
  const std::string text_secret = match.str();
  EXPECT_THAT(text.out, HasSubstr("secret: " + text_secret + "\n"));
  EXPECT_THAT(text.out, HasSubstr("state: active\n"));
  EXPECT_THAT(text.out, HasSubstr("principal: app\n"));
  EXPECT_THAT(text.err, HasSubstr("not shown again"));

  json created = KmsctlJson({"apikey", "create", "--tenant", "acme", "--principal", "app"});
  ASSERT_TRUE(created["secret"].is_string()) << created.dump();
  const std::string json_secret = created["secret"];
  EXPECT_TRUE(std::regex_match(json_secret, kSecretPattern)) << json_secret;
  EXPECT_THAT(json_secret, HasSubstr("kmsd_ak_" + created["id"].get<std::string>() + "_"));
  EXPECT_EQ(created["principal"], "app");
  EXPECT_FALSE(created.contains("expires_at"));

  CommandResult table = Kmsctl({"apikey", "list", "--tenant", "acme"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("ID"));
  EXPECT_THAT(table.out, HasSubstr("LAST_USED"));
  EXPECT_THAT(table.out, HasSubstr(created["id"].get<std::string>()));
  CommandResult as_json = Kmsctl({"--json", "apikey", "list", "--tenant", "acme"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  for (const std::string& out : {table.out, as_json.out}) {
    EXPECT_THAT(out, Not(HasSubstr(text_secret)));
    EXPECT_THAT(out, Not(HasSubstr(json_secret)));
    EXPECT_FALSE(std::regex_search(out, kSecretPattern)) << out;
  }
  json list = json::parse(as_json.out);
  ASSERT_EQ(list["api_keys"].size(), 2u);
  for (const json& key : list["api_keys"]) {
    EXPECT_FALSE(key.contains("secret"));
    EXPECT_EQ(key["state"], "active");
    EXPECT_EQ(key["principal"], "app");
  }

  MakePrincipal("other", "viewer");
  MakeKey("other");
  EXPECT_EQ(KmsctlJson({"apikey", "list", "--tenant", "acme"})["api_keys"].size(), 3u);
  json only_app = KmsctlJson({"apikey", "list", "--tenant", "acme", "--principal", "app"});
  EXPECT_EQ(only_app["api_keys"].size(), 2u);
}

TEST_F(KmsctlAccessTest, AKeyFromTheEnvironmentOrAFileActsAsItsPrincipal) {
  MakePrincipal("app", "user");
  MakePrincipal("auditor", "viewer");
  const std::string user_key = MakeKey("app");
  const std::string viewer_key = MakeKey("auditor");

  CommandResult by_environment = EncryptWithEnvironment(user_key);
  EXPECT_EQ(by_environment.exit_code, 0) << by_environment.err;
  EXPECT_FALSE(by_environment.out.empty());
  const std::string user_file = KeyFile("user.key", user_key + "\n", 0600);
  CommandResult by_file = EncryptWithFile(user_file);
  EXPECT_EQ(by_file.exit_code, 0) << by_file.err;

  for (const CommandResult& denied : {EncryptWithEnvironment(viewer_key),
                                      EncryptWithFile(KeyFile("viewer.key", viewer_key, 0600))}) {
    EXPECT_EQ(denied.exit_code, ExitCodeFor(Code::kAccessDenied)) << denied.err;
    EXPECT_THAT(denied.err, HasSubstr("ACCESS_DENIED"));
    EXPECT_THAT(denied.err, HasSubstr("crypto:encrypt"));
    EXPECT_EQ(denied.out, "");
  }
  // The file wins over the environment.
  CommandResult file_wins = EncryptWithFile(user_file, {{"KMSD_API_KEY", viewer_key}});
  EXPECT_EQ(file_wins.exit_code, 0) << file_wins.err;
  // Using a key leaves it active.
  json used = KmsctlJson({"apikey", "list", "--tenant", "acme", "--principal", "app"});
  ASSERT_EQ(used["api_keys"].size(), 1u);
  EXPECT_EQ(used["api_keys"][0]["state"], "active");
}

TEST_F(KmsctlAccessTest, AnUnusableKeyFileIsAUsageError) {
  MakePrincipal("app", "user");
  const std::string user_key = MakeKey("app");
  CommandResult shared = EncryptWithFile(KeyFile("shared.key", user_key, 0644));
  EXPECT_EQ(shared.exit_code, kUsageExit);
  EXPECT_THAT(shared.err, HasSubstr("USAGE"));
  EXPECT_THAT(shared.err, HasSubstr("group or others"));
  EXPECT_THAT(shared.err, HasSubstr("0644"));
  EXPECT_THAT(shared.err, Not(HasSubstr(user_key)));
  CommandResult group = EncryptWithFile(KeyFile("group.key", user_key, 0640));
  EXPECT_EQ(group.exit_code, kUsageExit);

  CommandResult empty = EncryptWithFile(KeyFile("empty.key", "\n", 0600));
  EXPECT_EQ(empty.exit_code, kUsageExit);
  EXPECT_THAT(empty.err, HasSubstr("is empty"));
  // A FIFO in the file's place is refused, not waited on.
  const std::string fifo = dir_ / "fifo.key";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CommandResult from_fifo = EncryptWithFile(fifo);
  EXPECT_EQ(from_fifo.exit_code, kUsageExit);
  EXPECT_THAT(from_fifo.err, HasSubstr("not a regular file"));
  CommandResult missing = EncryptWithFile(dir_ / "absent.key");
  EXPECT_EQ(missing.exit_code, kUsageExit);
  EXPECT_THAT(missing.err, HasSubstr("cannot be read"));
  CommandResult as_json = Kmsctl({"--json", "--api-key-file", dir_ / "absent.key", "status"});
  EXPECT_EQ(as_json.exit_code, kUsageExit);
  EXPECT_EQ(json::parse(as_json.out)["error"]["code"], "USAGE");

  // The key itself is never an argument.
  CommandResult argument = Kmsctl({"--api-key", user_key, "status"});
  EXPECT_EQ(argument.exit_code, kUsageExit);
}

TEST_F(KmsctlAccessTest, RevokedAndExpiredKeysAreRefused) {
  MakePrincipal("app", "user");
  const std::string secret = MakeKey("app");
  ASSERT_EQ(EncryptWithEnvironment(secret).exit_code, 0);
  const std::string id = secret.substr(8, 16);
  json revoked = KmsctlJson({"apikey", "revoke", "--tenant", "acme", id});
  EXPECT_EQ(revoked["id"], id);
  EXPECT_EQ(revoked["state"], "revoked");
  EXPECT_TRUE(revoked.contains("revoked_at"));
  CommandResult after_revoke = EncryptWithEnvironment(secret);
  EXPECT_EQ(after_revoke.exit_code, ExitCodeFor(Code::kAccessDenied)) << after_revoke.err;
  EXPECT_THAT(after_revoke.err, HasSubstr("ACCESS_DENIED"));
  EXPECT_THAT(after_revoke.err, HasSubstr("revoked"));

  // Used once (its secret proven), then past its expiry: named as expired.
  // A key never used before it expired is just not valid (no token call).
  // Expiry counts whole seconds: 2 s leaves at least one to use the key in.
  const std::string short_lived = MakeKey("app", {"--expires-in", "2s"});
  EXPECT_EQ(EncryptWithEnvironment(short_lived).exit_code, 0);
  const std::string unused = MakeKey("app", {"--expires-in", "1s"});
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  CommandResult never_used = EncryptWithEnvironment(unused);
  EXPECT_EQ(never_used.exit_code, ExitCodeFor(Code::kAccessDenied)) << never_used.err;
  EXPECT_THAT(never_used.err, HasSubstr("the API key is not valid"));
  CommandResult after_expiry = EncryptWithEnvironment(short_lived);
  EXPECT_EQ(after_expiry.exit_code, ExitCodeFor(Code::kAccessDenied)) << after_expiry.err;
  EXPECT_THAT(after_expiry.err, HasSubstr("expired"));
  json list = KmsctlJson({"apikey", "list", "--tenant", "acme"});
  std::map<std::string, std::string> states;
  for (const json& key : list["api_keys"]) states[key["id"]] = key["state"];
  EXPECT_EQ(states[id], "revoked");
  EXPECT_EQ(states[short_lived.substr(8, 16)], "expired");
}

TEST_F(KmsctlAccessTest, BadInputsHaveTheirExitCodes) {
  MakePrincipal("app", "user");
  const auto exit_of = [this](const std::vector<std::string>& args) {
    CommandResult result = Kmsctl(args);
    EXPECT_EQ(result.out, "") << result.out;
    return result.exit_code;
  };
  const int invalid = ExitCodeFor(Code::kInvalidArgument);
  const int not_found = ExitCodeFor(Code::kNotFound);
  EXPECT_EQ(exit_of({"principal", "create", "--tenant", "acme", "p1", "--role", "superuser"}),
            invalid);
  EXPECT_EQ(exit_of({"principal", "create", "--tenant", "acme", "p2", "--role", "admin"}), invalid);
  EXPECT_EQ(exit_of({"principal", "set-roles", "--tenant", "acme", "app", "--role", "admin"}),
            invalid);
  EXPECT_EQ(exit_of({"principal", "create", "--tenant", "acme", "app", "--role", "viewer"}),
            ExitCodeFor(Code::kAlreadyExists));
  EXPECT_EQ(exit_of({"principal", "create", "--tenant", "nosuch", "p3", "--role", "user"}),
            not_found);
  EXPECT_EQ(exit_of({"apikey", "create", "--tenant", "acme", "--principal", "ghost"}), not_found);
  EXPECT_EQ(exit_of({"apikey", "revoke", "--tenant", "acme", "0123456789abcdef"}), not_found);
  for (const char* duration : {"10x", "0s", "10", "d", "-5m", "1.5h", "99999999999999999999d"}) {
    EXPECT_EQ(exit_of({"apikey", "create", "--tenant", "acme", "--principal", "app", "--expires-in",
                       duration}),
              kUsageExit)
        << duration;
  }
  CommandResult bad_duration =
      Kmsctl({"apikey", "create", "--tenant", "acme", "--principal", "app", "--expires-in", "10x"});
  EXPECT_THAT(bad_duration.err, HasSubstr("USAGE"));
  EXPECT_THAT(bad_duration.err, HasSubstr("--expires-in"));
  // No key was made by any of these.
  EXPECT_EQ(KmsctlJson({"apikey", "list", "--tenant", "acme"})["api_keys"].size(), 0u);
  // Required parts are usage errors.
  EXPECT_EQ(exit_of({"principal", "create", "--tenant", "acme", "p4"}), kUsageExit);
  EXPECT_EQ(exit_of({"principal", "list"}), kUsageExit);
  EXPECT_EQ(exit_of({"apikey", "create", "--tenant", "acme"}), kUsageExit);
  EXPECT_EQ(
      exit_of({"principal", "create", "--tenant", "acme", "p5", "--role", "user", "--uid", "-1"}),
      kUsageExit);
}

TEST_F(KmsctlAccessTest, RolesAreCreatedChangedDescribedListedAndDeleted) {
  json created = KmsctlJson({"role", "create", "--tenant", "acme", "clerk", "--inherits", "viewer",
                             "--allow", "crypto:encrypt@key/orders"});
  EXPECT_EQ(created["inherits"], json({"viewer"}));
  EXPECT_EQ(created["narrowed"], json({"crypto:encrypt@key/orders"}));
  EXPECT_THAT(created["permissions"].dump(), HasSubstr("key:read"));
  json changed = KmsctlJson(
      {"role", "update", "--tenant", "acme", "clerk", "--allow", "crypto:decrypt@alias/data"});
  EXPECT_EQ(changed["inherits"], json::array());
  EXPECT_EQ(changed["narrowed"], json({"crypto:decrypt@alias/data"}));
  CommandResult table = Kmsctl({"role", "list", "--tenant", "acme"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("NAME   INHERITS  ALLOW"));
  EXPECT_THAT(table.out, HasSubstr("crypto:decrypt@alias/data"));
  EXPECT_EQ(KmsctlJson({"role", "describe", "--tenant", "acme", "clerk"})["name"], "clerk");

  CommandResult cycle =
      Kmsctl({"role", "update", "--tenant", "acme", "clerk", "--inherits", "clerk"});
  EXPECT_EQ(cycle.exit_code, ExitCodeFor(Code::kInvalidArgument));
  EXPECT_THAT(cycle.err, HasSubstr("clerk -> clerk"));
  CommandResult bad = Kmsctl({"role", "create", "--tenant", "acme", "x", "--allow", "crypto:fly"});
  EXPECT_EQ(bad.exit_code, ExitCodeFor(Code::kInvalidArgument));
  EXPECT_THAT(bad.err, HasSubstr("permission statement 'crypto:fly'"));
  EXPECT_EQ(Kmsctl({"role", "create", "--tenant", "acme", "x"}).exit_code,
            ExitCodeFor(Code::kInvalidArgument));  // nothing inherited or allowed

  MakePrincipal("app", "clerk");
  EXPECT_EQ(Kmsctl({"role", "delete", "--tenant", "acme", "clerk"}).exit_code,
            ExitCodeFor(Code::kInvalidArgument));  // held by app
  ASSERT_EQ(Kmsctl({"principal", "delete", "--tenant", "acme", "app"}).exit_code, 0);
  CommandResult deleted = Kmsctl({"role", "delete", "--tenant", "acme", "clerk"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(Kmsctl({"role", "describe", "--tenant", "acme", "clerk"}).exit_code,
            ExitCodeFor(Code::kNotFound));
}

TEST_F(KmsctlAccessTest, AGrantLetsItsPrincipalEncryptWithinItsContextUntilRetired) {
  MakePrincipal("app", "viewer");
  const std::string secret = MakeKey("app");
  auto encrypt = [&](std::vector<std::string> context) {
    std::vector<std::string> args = {"encrypt", "--tenant", "acme", "--key", "alias/data"};
    for (const std::string& pair : context) {
      args.push_back("--context");
      args.push_back(pair);
    }
    return Kmsctl(args, {{"KMSD_API_KEY", secret}}, "plaintext");
  };
  EXPECT_EQ(encrypt({}).exit_code, ExitCodeFor(Code::kAccessDenied));

  json grant = KmsctlJson({"grant", "create", "--tenant", "acme", "--key", "alias/data",
                           "--principal", "app", "--operations", "encrypt,decrypt", "--context",
                           "purpose=billing", "--expires-in", "1h"});
  EXPECT_EQ(grant["state"], "active");
  EXPECT_EQ(grant["operations"], json({"encrypt", "decrypt"}));
  EXPECT_EQ(grant["context"], json({{"purpose", "billing"}}));
  EXPECT_TRUE(grant["expires_at"].is_number());
  const std::string id = grant["id"];

  CommandResult allowed = encrypt({"purpose=billing"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_EQ(encrypt({"purpose=other"}).exit_code, ExitCodeFor(Code::kAccessDenied));

  CommandResult table = Kmsctl({"grant", "list", "--tenant", "acme", "--principal", "app"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(id));
  EXPECT_THAT(table.out, HasSubstr("encrypt, decrypt"));
  EXPECT_EQ(KmsctlJson({"grant", "retire", "--tenant", "acme", id})["state"], "retired");
  EXPECT_EQ(encrypt({"purpose=billing"}).exit_code, ExitCodeFor(Code::kAccessDenied));

  // kmsctl's own syntax is a usage error; kmsd's refusals have their codes.
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--context", "no-equals"},
                                                std::vector<std::string>{"--expires-in", "1y"}}) {
    std::vector<std::string> args = {"grant",        "create",     "--tenant",    "acme",
                                     "--key",        "alias/data", "--principal", "app",
                                     "--operations", "encrypt"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(Kmsctl(args).exit_code, kUsageExit) << extra[1];
  }
  CommandResult unknown = Kmsctl({"grant", "create", "--tenant", "acme", "--key", "alias/data",
                                  "--principal", "app", "--operations", "encrypt,fly"});
  EXPECT_EQ(unknown.exit_code, ExitCodeFor(Code::kInvalidArgument));
  EXPECT_THAT(unknown.err, HasSubstr("unknown grant operation 'fly'"));
  EXPECT_EQ(Kmsctl({"grant", "retire", "--tenant", "acme", "0123456789abcdef"}).exit_code,
            ExitCodeFor(Code::kNotFound));
  EXPECT_EQ(
      Kmsctl({"grant", "create", "--tenant", "acme", "--key", "alias/data", "--principal", "app"})
          .exit_code,
      kUsageExit);  // --operations is required
}

}  // namespace
}  // namespace kmsd::testing
