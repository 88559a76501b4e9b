// End-to-end: who may call kmsd, and how it refuses to start on a bad config.
// A daemon from a YAML config (private SoftHSM2 token, PIN file 0600) whose
// admins do not include the caller denies every operation and changes
// nothing; listed admins (by uid or gid) are served; the socket gets the
// configured mode. Config errors exit 2 and name the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

// Every operation of protocol v1 with arguments an admin would be served.
// `backup_path` (a name in the backup directory) must not exist.
std::vector<std::tuple<std::string, std::string, Value::Map>> EveryOperation(
    const Bytes& ciphertext, const std::string& backup_path) {
  std::vector<std::tuple<std::string, std::string, Value::Map>> ops;
  auto add = [&](std::string op, std::string tenant, Value::Map args) {
    ops.emplace_back(std::move(op), std::move(tenant), std::move(args));
  };
  add("status", "", {});
  add("health", "", {});
  add("tenant.list", "", {});
  add("keystore.backup", "", MapOf("path", backup_path));
  add("generate-random", "", MapOf("number_of_bytes", 32));
  add("tenant.create", "intruder", {});
  add("tenant.describe", "acme", {});
  add("key.create", "acme", MapOf("name", "intruder-key"));
  add("key.describe", "acme", MapOf("key", "alias/data"));
  add("key.list", "acme", {});
  add("key.rotate", "acme", MapOf("key", "alias/data"));
  add("key.list-versions", "acme", MapOf("key", "alias/data"));
  add("alias.create", "acme", MapOf("alias", "alias/intruder", "key", "secrets-key"));
  add("alias.update", "acme", MapOf("alias", "alias/secrets", "key", "data-encryption-key"));
  add("alias.delete", "acme", MapOf("alias", "alias/secrets"));
  add("alias.list", "acme", {});
  add("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin("intruder")));
  add("decrypt", "acme", MapOf("ciphertext", ciphertext));
  add("re-encrypt", "acme", MapOf("ciphertext", ciphertext, "destination_key", "secrets-key"));
  Value::Array encrypt_items;
  encrypt_items.emplace_back(MapOf("plaintext", Bin("intruder")));
  add("batch-encrypt", "acme", MapOf("key", "alias/data", "items", std::move(encrypt_items)));
  Value::Array decrypt_items;
  decrypt_items.emplace_back(MapOf("ciphertext", ciphertext));
  add("batch-decrypt", "acme", MapOf("items", std::move(decrypt_items)));
  add("generate-data-key", "acme", MapOf("key", "alias/data"));
  add("generate-data-key-without-plaintext", "acme", MapOf("key", "alias/data"));
  return ops;
}

Bytes EncryptOrFail(Connection& connection, std::string_view plaintext) {
  auto reply =
      connection.Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin(plaintext)));
  if (!reply) {
    ADD_FAILURE() << reply.error();
    return {};
  }
  auto ciphertext = reply->result().Binary("ciphertext").value();
  return Bytes(ciphertext.begin(), ciphertext.end());
}

TEST(HostileAccessTest, PeerThatIsNotAnAdminIsRefusedAtConnectAndChangesNothing) {
  ConfiguredHost host;
  ConfigOptions admin;
  admin.admin_uids = Uids(getuid());
  Bytes ciphertext;
  std::string before;
  {
    auto daemon = host.Start(admin);
    auto connection = daemon->Connect();
    ASSERT_TRUE(connection->Call("tenant.create", "acme"));
    ciphertext = EncryptOrFail(*connection, "admins only");
    before = Snapshot(*connection).value();
    ASSERT_EQ(daemon->Stop(), 0);
  }
  {
    // Same token and keystore; the caller's uid is no longer an admin: kmsd
    // closes its connections before reading a request, and the client says so.
    ConfigOptions stranger;
    stranger.admin_uids = Uids(getuid() + 12345);
    auto daemon = host.Start(stranger);
    auto connection = daemon->Connect();
    const std::string backup = host.dir() / "backups/denied-backup.db";
    const std::string backup_name = "denied-backup.db";
    const size_t count = EveryOperation(ciphertext, backup_name).size();
    for (size_t i = 0; i < count; ++i) {
      const std::string op = std::get<0>(EveryOperation(ciphertext, backup_name)[i]);
      SCOPED_TRACE(op);
      auto ops = EveryOperation(ciphertext, backup_name);
      auto& [name, tenant, args] = ops[i];
      auto reply = connection->Call(name, tenant, std::move(args));
      ASSERT_FALSE(reply) << op << " was served to a non-admin";
      EXPECT_EQ(reply.error().code(), Code::kAccessDenied) << reply.error();
      EXPECT_THAT(reply.error().message(),
                  HasSubstr("kmsd closed the connection before answering: this user may not use "
                            "kmsd"));
    }
    EXPECT_FALSE(std::filesystem::exists(backup));
    // Raw requests too; a refused call returns quickly.
    const auto begin = std::chrono::steady_clock::now();
    auto raw = connection->CallRaw(Encode(Envelope(99, "tenant.list")));
    ASSERT_FALSE(raw);
    EXPECT_EQ(raw.error().code(), Code::kAccessDenied) << raw.error();
    EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
    ASSERT_EQ(daemon->Stop(), 0);
    // The log names the refused peer, in rationed summary lines, and no
    // request was ever read.
    const std::string log = daemon->ReadLog();
    EXPECT_THAT(log, HasSubstr("latest: uid " + std::to_string(getuid()) + " pid " +
                               std::to_string(getpid()) + ", not allowed to use kmsd"));
    EXPECT_THAT(log, ::testing::Not(HasSubstr("request id=")));
  }
  {
    // Admin by gid only: served, and nothing changed while it was denied.
    ConfigOptions by_gid;
    by_gid.admin_uids = Uids(getuid() + 12345);
    by_gid.admin_gids = Uids(getgid());
    auto daemon = host.Start(by_gid);
    auto connection = daemon->Connect();
    auto after = Snapshot(*connection);
    ASSERT_TRUE(after) << after.error();
    EXPECT_EQ(*after, before);
    auto decrypted = connection->Call("decrypt", "acme", MapOf("ciphertext", ciphertext));
    ASSERT_TRUE(decrypted) << decrypted.error();
    EXPECT_EQ(AsString(decrypted->result().Binary("plaintext").value()), "admins only");
  }
}

TEST(HostileAccessTest, AdminIsServedEveryOperation) {
  ConfiguredHost host;
  ConfigOptions admin;
  admin.admin_uids = "[" + std::to_string(getuid() + 12345) + ", " + std::to_string(getuid()) + "]";
  auto daemon = host.Start(admin);
  auto connection = daemon->Connect();
  ASSERT_TRUE(connection->Call("tenant.create", "acme"));
  const Bytes ciphertext = EncryptOrFail(*connection, "served");
  for (auto& [op, tenant, args] : EveryOperation(ciphertext, "backup.db")) {
    auto reply = connection->Call(op, tenant, std::move(args));
    EXPECT_TRUE(reply) << op << ": " << reply.error();
  }
}

TEST(HostileAccessTest, SocketGetsTheConfiguredMode) {
  ConfiguredHost host;
  for (const char* mode : {"0600", "0660", "0666"}) {
    SCOPED_TRACE(mode);
    ConfigOptions options;
    options.admin_uids = Uids(getuid());
    options.socket_mode = mode;
    auto daemon = host.Start(options);
    struct stat st {};
    ASSERT_EQ(stat(host.socket_path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, std::stoul(mode, nullptr, 8));
    ASSERT_EQ(daemon->Stop(), 0);
  }
}

// kmsd --config with a broken config: exit 2, stderr naming the problem.
class HostileConfigTest : public ::testing::Test {
 protected:
  HostileConfigTest() { options_.admin_uids = Uids(getuid()); }

  // Runs kmsd on `yaml` and expects exit `code` and `substring` on stderr.
  void ExpectStartFails(const std::string& yaml, int code, const std::string& substring) {
    const std::string path = host_.WriteConfig("bad" + std::to_string(++configs_), yaml);
    CommandResult result = RunKmsd({"--config", path}, host_.env());
    EXPECT_EQ(result.exit_code, code) << result.err;
    EXPECT_THAT(result.err, HasSubstr(substring));
  }

  std::string Replace(std::string from, const std::string& what, const std::string& with) {
    const size_t at = from.find(what);
    EXPECT_NE(at, std::string::npos) << what;
    if (at != std::string::npos) from.replace(at, what.size(), with);
    return from;
  }

  std::string Good() const { return host_.ConfigYaml(options_); }

  ConfiguredHost host_;
  ConfigOptions options_;
  int configs_ = 0;
};

TEST_F(HostileConfigTest, GoodConfigStarts) {
  auto daemon = host_.Start(options_);
  EXPECT_TRUE(daemon->Connect()->Call("health"));
}

TEST_F(HostileConfigTest, MissingFileExits2) {
  const std::string path = host_.dir() / "no-such.yaml";
  CommandResult result = RunKmsd({"--config", path}, host_.env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr(path + ": cannot be read"));
}

TEST_F(HostileConfigTest, InvalidYamlExits2) {
  ExpectStartFails("pkcs11: [unclosed\n  token_label: x\n", 2, "not valid YAML");
  ExpectStartFails("- just\n- a list\n", 2, "'(top level)' must be a map");
}

TEST_F(HostileConfigTest, MissingTokenLabelExits2) {
  const std::string yaml = Good();
  const size_t begin = yaml.find("  token_label:");
  const size_t end = yaml.find('\n', begin);
  ExpectStartFails(yaml.substr(0, begin) + yaml.substr(end + 1), 2,
                   "field 'pkcs11.token_label' is required");
}

TEST_F(HostileConfigTest, UnknownFieldExits2NamingIt) {
  ExpectStartFails(Replace(Good(), "  module:", "  modul:"), 2,
                   "field 'pkcs11.modul' is not a known field");
  ExpectStartFails(Good() + "listen: /tmp/x\n", 2, "field 'listen' is not a known field");
  ExpectStartFails(Replace(Good(), "  workers:", "  worker:"), 2,
                   "field 'limits.worker' is not a known field");
}

TEST_F(HostileConfigTest, BadSocketModeExits2) {
  for (const char* mode : {"999", "0778", "rw-rw----", "01777", "-1", ""}) {
    SCOPED_TRACE(mode);
    ConfigOptions options = options_;
    options.socket_mode = mode;
    ExpectStartFails(host_.ConfigYaml(options), 2, "field 'socket.mode'");
  }
}

TEST_F(HostileConfigTest, OutOfRangeLimitsExit2) {
  ConfigOptions options = options_;
  options.workers = 0;
  ExpectStartFails(host_.ConfigYaml(options), 2,
                   "field 'limits.workers' must be between 1 and 256");
  options.workers = 257;
  ExpectStartFails(host_.ConfigYaml(options), 2, "field 'limits.workers' must be between 1");
  ExpectStartFails(Replace(Good(), "  workers: 4", "  workers: -4"), 2,
                   "field 'limits.workers' must be a non-negative integer");
  ExpectStartFails(Replace(Good(), "  workers: 4", "  workers: many"), 2,
                   "field 'limits.workers' must be a non-negative integer");
  options = options_;
  options.max_frame_bytes = 1023;
  ExpectStartFails(host_.ConfigYaml(options), 2, "field 'limits.max_frame_bytes' must be between");
  options = options_;
  options.max_connections_per_uid = 65537;
  ExpectStartFails(host_.ConfigYaml(options), 2,
                   "field 'limits.max_connections_per_uid' must be between 1 and 65536");
  options = options_;
  options.idle_timeout_ms = 99;
  ExpectStartFails(host_.ConfigYaml(options), 2,
                   "field 'limits.idle_timeout_ms' must be between 100 and 3600000");
  options.idle_timeout_ms = 3600001;
  ExpectStartFails(host_.ConfigYaml(options), 2, "field 'limits.idle_timeout_ms' must be between");
  options = options_;
  options.max_queued_per_tenant = 65537;
  ExpectStartFails(host_.ConfigYaml(options), 2,
                   "field 'limits.max_queued_per_tenant' must be between 1 and 65536");
  options.max_queued_per_tenant = 8;
  options.max_queued = 4;
  ExpectStartFails(host_.ConfigYaml(options), 2,
                   "field 'limits.max_queued' must be at least limits.max_queued_per_tenant");
  ExpectStartFails(Good() + "  max_queued_bytes: 1024\n", 2,
                   "field 'limits.max_queued_bytes' must be between 1048576 and");
  ExpectStartFails(Good() + "  max_connections: 0\n", 2,
                   "field 'limits.max_connections' must be between 1 and 65536");
  ExpectStartFails(Good() + "  max_connections: 65537\n", 2,
                   "field 'limits.max_connections' must be between 1 and 65536");
}

TEST_F(HostileConfigTest, MissingAdminsExits2) {
  const std::string yaml = Good();
  const size_t begin = yaml.find("admins:");
  const size_t end = yaml.find("limits:");
  ExpectStartFails(yaml.substr(0, begin) + yaml.substr(end), 2, "field 'admins' is required");
  ExpectStartFails(Replace(Good(), Uids(getuid()), "[root]"), 2,
                   "field 'admins.uids' must be a list of numeric ids");
}

TEST_F(HostileConfigTest, PinFileReadableByOthersIsRefused) {
  // The PIN file is a config input: refusing it is a configuration error
  // (exit 2), like any other bad field.
  chmod(host_.pin_path().c_str(), 0644);
  ExpectStartFails(Good(), 2, "PIN file " + host_.pin_path() + " is readable by group or others");
  chmod(host_.pin_path().c_str(), 0640);
  ExpectStartFails(Good(), 2, "chmod 0600");
}

TEST_F(HostileConfigTest, MissingOrEmptyPinFileIsRefused) {
  ExpectStartFails(Replace(Good(), host_.pin_path(), host_.pin_path() + ".missing"), 2,
                   "PIN file " + host_.pin_path() + ".missing cannot be read");
  { std::ofstream(host_.pin_path(), std::ios::trunc) << "\n"; }
  ExpectStartFails(Good(), 2, "PIN file " + host_.pin_path() + " is empty");
}

TEST_F(HostileConfigTest, WrongPinOrTokenIsAStartUpFailure) {
  // Runtime failures against the token exit 1 (not a usage error).
  { std::ofstream(host_.pin_path(), std::ios::trunc) << "not-the-pin\n"; }
  ExpectStartFails(Good(), 1, "C_Login");
  { std::ofstream(host_.pin_path(), std::ios::trunc) << host_.token().user_pin() << "\n"; }
  ExpectStartFails(Replace(Good(), "token_label: kmsd-test", "token_label: no-such-token"), 1,
                   "no token labelled 'no-such-token'");
  ExpectStartFails(Replace(Good(), host_.token().module_path(), "/nonexistent/libpkcs11.so"), 1,
                   "/nonexistent/libpkcs11.so");
}

TEST(HostileCommandLineTest, NoArgumentsExits2) {
  CommandResult result = RunKmsd({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("give --dev DIR or --config FILE"));
}

TEST(HostileCommandLineTest, DevAndConfigTogetherExit2) {
  TempDir dir;
  CommandResult result = RunKmsd({"--dev", dir / "dev", "--config", dir / "kmsd.yaml"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err + result.out, HasSubstr("excludes"));
  EXPECT_FALSE(std::filesystem::exists(dir / "dev")) << "nothing may be created";
}

TEST(HostileCommandLineTest, UnknownFlagOrLogLevelExits2) {
  EXPECT_EQ(RunKmsd({"--deve", "/tmp/x"}).exit_code, 2);
  TempDir dir;
  EXPECT_EQ(RunKmsd({"--dev", dir / "dev", "--log-level", "loud"}).exit_code, 2);
}

}  // namespace
}  // namespace kmsd::testing
