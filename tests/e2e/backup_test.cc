// End-to-end: `kmsctl keystore backup` while kmsd serves (into the backup
// directory; backup_dir_test.cc attacks its fence), and
// `kmsd --restore` into the stopped daemon (docs/CLI.md, docs/CONFIG.md).
// The backup must hold only wrapped material: the test scans its bytes for
// every plaintext, data key and PIN it handled, raw, hex and base64.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/support/files.h"
#include "tests/support/secret_forms.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)), 1);
  return out;
}

class BackupTest : public KmsdTest {
 protected:
  std::string DevDir() const { return dir_ / "kmsd"; }
  // Where kmsd writes backups in dev mode.
  std::string BackupDir() const {
    return (std::filesystem::canonical(DevDir()) / "backups").string();
  }

  CommandResult Kmsctl(const std::vector<std::string>& args) {
    return RunKmsctl(daemon_->socket_path(), args);
  }

  CommandResult Restore(const std::string& file) {
    return RunKmsd({"--dev", DevDir(), "--restore", file});
  }

  void StopDaemon() {
    connection_.reset();
    ASSERT_EQ(daemon_->Stop(), 0);
  }

  void StartDaemon() {
    daemon_ = DaemonProcess::StartDev(DevDir());
    connection_ = daemon_->Connect();
  }

  // A backup named `name` through kmsctl; its JSON result.
  json Backup(const std::string& name) {
    CommandResult result = Kmsctl({"--json", "keystore", "backup", name});
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }

  std::set<std::string> TenantNames() {
    CommandResult result = Kmsctl({"--json", "tenant", "list"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::set<std::string> names;
    const json list = json::parse(result.out);
    for (const json& tenant : list["tenants"]) names.insert(tenant["name"]);
    return names;
  }

  uint64_t LatestVersion(std::string_view tenant, std::string_view key) {
    Value::Map args;
    args.emplace_back("key", key);
    return MustCall("key.describe", tenant, std::move(args))
        .result()
        .Uint("latest_version")
        .value_or(0);
  }
};

struct Sealed {
  std::string tenant;
  std::string plaintext;
  Bytes ciphertext;
};

TEST_F(BackupTest, BackupHoldsOnlyWrappedMaterialAndRestoreBringsItBack) {
  MustCall("tenant.create", "acme");
  MustCall("tenant.create", "globex");
  Value::Map create;
  create.emplace_back("name", "orders");
  MustCall("key.create", "acme", std::move(create));
  Value::Map rotate;
  rotate.emplace_back("key", "alias/data");
  MustCall("key.rotate", "acme", std::move(rotate));

  std::vector<Sealed> sealed;
  std::vector<std::string> secrets = {ReadFileBytes(DevDir() + "/user-pin"),
                                      ReadFileBytes(DevDir() + "/so-pin")};
  for (std::string& pin : secrets) {
    while (!pin.empty() && pin.back() == '\n') pin.pop_back();
    ASSERT_GE(pin.size(), 8u);
  }
  for (const char* tenant : {"acme", "globex"}) {
    for (const char* key : {"alias/data", "alias/secrets"}) {
      std::string plaintext = RandomBytes(48);
      sealed.push_back({tenant, plaintext, Encrypt(tenant, key, plaintext)});
      std::string text = std::string("plaintext of ") + tenant + " under " + key + " " +
                         Hex(RandomBytes(8), false);
      sealed.push_back({tenant, text, Encrypt(tenant, key, text)});
    }
    Value::Map args;
    args.emplace_back("key", "alias/data");
    Reply data_key = MustCall("generate-data-key", tenant, std::move(args));
    auto plaintext = data_key.result().Binary("plaintext");
    auto ciphertext = data_key.result().Binary("ciphertext");
    ASSERT_TRUE(plaintext.has_value() && ciphertext.has_value());
    sealed.push_back({tenant, ToString(*plaintext), Bytes(ciphertext->begin(), ciphertext->end())});
  }

  // Another client keeps encrypting while the backup is taken.
  std::atomic<bool> stop{false};
  std::mutex concurrent_mu;
  std::vector<Sealed> concurrent;
  std::thread writer([&] {
    auto connection = daemon_->Connect();
    while (!stop) {
      std::string plaintext = RandomBytes(32);
      Value::Map args;
      args.emplace_back("key", "alias/data");
      args.emplace_back("plaintext", ToBytes(plaintext));
      auto reply = connection->Call("encrypt", "acme", std::move(args));
      if (!reply) continue;
      auto ciphertext = reply->result().Binary("ciphertext");
      if (!ciphertext) continue;
      std::lock_guard lock(concurrent_mu);
      concurrent.push_back({"acme", plaintext, Bytes(ciphertext->begin(), ciphertext->end())});
    }
  });
  while (true) {
    std::lock_guard lock(concurrent_mu);
    if (concurrent.size() >= 5) break;
  }
  json result = Backup("backup.db");
  const std::string backup = BackupDir() + "/backup.db";
  stop = true;
  writer.join();
  ASSERT_GE(concurrent.size(), 5u);

  EXPECT_EQ(result["path"], backup);
  EXPECT_EQ(result["tenants"], 2);
  EXPECT_EQ(result["keys"], 7);  // three per tenant and acme's "orders"
  EXPECT_EQ(result["schema_version"],
            MustCall("status").result().Map("keystore").value().Uint("schema_version").value_or(0));
  const std::string bytes = ReadFileBytes(backup);
  EXPECT_EQ(result["bytes"], bytes.size());
  struct stat st;
  ASSERT_EQ(stat(backup.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, getuid());
  // The scan below would find these names, so it does read the records.
  EXPECT_NE(bytes.find("globex"), std::string::npos);
  EXPECT_NE(bytes.find("orders"), std::string::npos);
  for (const Sealed& s : sealed) secrets.push_back(s.plaintext);
  for (const Sealed& s : concurrent) secrets.push_back(s.plaintext);
  for (const std::string& secret : secrets) {
    for (const std::string& form : SecretForms(secret)) {
      EXPECT_EQ(bytes.find(form), std::string::npos) << "a secret of the test is in the backup";
    }
  }

  // Changes after the backup are undone by the restore.
  MustCall("tenant.create", "later");
  Value::Map rotate_again;
  rotate_again.emplace_back("key", "alias/data");
  MustCall("key.rotate", "acme", std::move(rotate_again));
  ASSERT_EQ(LatestVersion("acme", "alias/data"), 3u);
  const Bytes after_backup = Encrypt("acme", "alias/data", "made after the backup");
  StopDaemon();

  CommandResult restored = Restore(backup);
  ASSERT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  EXPECT_THAT(restored.out, HasSubstr("2 tenants, 7 keys"));
  EXPECT_EQ(ReadFileBytes(backup), bytes) << "restore must only read the backup";
  StartDaemon();

  EXPECT_EQ(TenantNames(), (std::set<std::string>{"acme", "globex"}));
  EXPECT_EQ(LatestVersion("acme", "alias/data"), 2u);
  EXPECT_EQ(LatestVersion("acme", "orders"), 1u);
  EXPECT_EQ(LatestVersion("globex", "alias/secrets"), 1u);
  for (const auto& list : {sealed, concurrent}) {
    for (const Sealed& s : list) {
      Result<std::string> plaintext = Decrypt(s.tenant, s.ciphertext);
      ASSERT_TRUE(plaintext.has_value()) << plaintext.error();
      EXPECT_TRUE(*plaintext == s.plaintext);
    }
  }
  EXPECT_FALSE(Decrypt("acme", after_backup).has_value());
}

TEST_F(BackupTest, BackupRefusesExistingFileTenantAndMissingPath) {
  MustCall("tenant.create", "acme");
  const std::string existing = BackupDir() + "/existing.db";
  std::ofstream(existing) << "precious";
  CommandResult taken = Kmsctl({"keystore", "backup", "existing.db"});
  EXPECT_EQ(taken.exit_code, 11) << taken.out << taken.err;
  EXPECT_THAT(taken.err + taken.out, HasSubstr("ALREADY_EXISTS"));
  EXPECT_EQ(ReadFileBytes(existing), "precious");

  Value::Map with_tenant;
  with_tenant.emplace_back("path", "b.db");
  auto reply = Call("keystore.backup", "acme", std::move(with_tenant));
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), Code::kInvalidArgument);

  reply = Call("keystore.backup", "", {});
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), Code::kInvalidArgument);
  // Nothing but the file above is in the backup directory.
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(BackupDir())) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"existing.db"});
}

TEST_F(BackupTest, KmsctlSendsTheNameAsGivenWhateverItsWorkingDirectory) {
  const std::string work = dir_ / "work";
  std::filesystem::create_directory(work);
  CommandResult result =
      RunCommand({"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" --socket \"$3\" keystore backup b.db",
                  "sh", work, KMSCTL_BINARY, daemon_->socket_path()});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("path: " + BackupDir() + "/b.db"));
  EXPECT_TRUE(std::filesystem::exists(BackupDir() + "/b.db"));
  EXPECT_TRUE(std::filesystem::is_empty(work));
}

TEST_F(BackupTest, RestoreWhileTheDaemonRunsIsRefused) {
  MustCall("tenant.create", "acme");
  Backup("backup.db");
  const std::string backup = BackupDir() + "/backup.db";
  MustCall("tenant.create", "later");

  CommandResult refused = Restore(backup);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("a kmsd is listening on " + daemon_->socket_path() +
                                     "; stop it before restoring"));
  EXPECT_EQ(TenantNames(), (std::set<std::string>{"acme", "later"}));
}

TEST_F(BackupTest, RestoreOfAFileThatIsNotAKeystoreExits1AndKeepsTheKeystore) {
  MustCall("tenant.create", "acme");
  StopDaemon();
  const std::string keystore = DevDir() + "/keystore.db";
  const std::string before = ReadFileBytes(keystore);
  const std::string text = dir_ / "notes.txt";
  std::ofstream(text) << "these are not the keys you are looking for, not even an SQLite file";

  CommandResult refused = Restore(text);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("restore failed, keystore unchanged"));
  EXPECT_THAT(refused.err, HasSubstr("not a kmsd keystore"));
  EXPECT_EQ(ReadFileBytes(keystore), before);
  StartDaemon();
  EXPECT_EQ(TenantNames(), (std::set<std::string>{"acme"}));
}

TEST_F(BackupTest, RestoreOfAMissingFileExits1AndKeepsTheKeystore) {
  MustCall("tenant.create", "acme");
  StopDaemon();
  CommandResult refused = Restore(dir_ / "missing.db");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("cannot open the backup"));
  StartDaemon();
  EXPECT_EQ(TenantNames(), (std::set<std::string>{"acme"}));
}

TEST_F(BackupTest, RestoreNeedsDevOrConfig) {
  CommandResult usage = RunKmsd({"--restore", dir_ / "backup.db"});
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace kmsd::testing
