// End-to-end: keystore.backup writes only into kmsd's backup directory
// (keystore.backup_dir; dev mode: DIR/backups), never through a symlink, and
// kmsd refuses to start on a backup directory it cannot trust (docs/CONFIG.md,
// docs/PROTOCOL.md keystore.backup). Through the real socket and kmsctl.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/e2e/config_fixture.h"
#include "tests/e2e/hostile_support.h"
#include "tests/support/files.h"

namespace kmsd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Every path under `dir` (symlinks not followed), with file sizes: what a
// refused request must not change. The daemon's log and audit log, the
// keystore's own files (its -wal grows with any write) and the token's
// objects (the audit log's head there is replaced at each commit, also after
// a refused request) are left out.
std::set<std::string> Tree(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".log") || name.starts_with("keystore.db")) continue;
    if (entry.path().parent_path().parent_path().filename() == "tokens") continue;
    std::string line = entry.path().string();
    if (entry.is_symlink()) line += " -> " + fs::read_symlink(entry.path()).string();
    out.insert(line);
  }
  return out;
}

class BackupDirTest : public HostileDaemonTest {
 protected:
  std::string DevDir() const { return dir_ / "kmsd"; }
  std::string BackupDir() const { return (fs::canonical(DevDir()) / "backups").string(); }

  CommandResult Kmsctl(const std::vector<std::string>& args) {
    return RunKmsctl(daemon_->socket_path(), args);
  }

  // keystore.backup of `path` must fail with `code` and `substring`, change
  // neither the keystore nor a file anywhere under the test's directory.
  void ExpectBackupRefused(const std::string& path, Code code, const std::string& substring) {
    SCOPED_TRACE("path: " + path);
    const std::set<std::string> before = Tree(dir_.path());
    ExpectRejected("keystore.backup", "", MapOf("path", path), code, substring);
    EXPECT_EQ(Tree(dir_.path()), before);
  }
};

TEST_F(BackupDirTest, DevModeCreatesTheBackupDirectoryOwnerOnly) {
  struct stat st;
  ASSERT_EQ(lstat((DevDir() + "/backups").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("backups in " + BackupDir()));
}

TEST_F(BackupDirTest, ANameLandsInTheBackupDirectoryWithMode0600) {
  auto reply = Call("keystore.backup", "", MapOf("path", "first.db"));
  ASSERT_TRUE(reply) << reply.error();
  const std::string written = BackupDir() + "/first.db";
  EXPECT_EQ(reply->result().String("path").value_or(""), written);
  EXPECT_EQ(reply->result().Uint("tenants").value_or(0), 2u);
  struct stat st;
  ASSERT_EQ(lstat(written.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), reply->result().Uint("bytes").value_or(0));
  // Only the backup: no temporary file left in the directory.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(BackupDir())) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"first.db"});
}

TEST_F(BackupDirTest, AnAbsolutePathDirectlyInTheBackupDirectoryWorks) {
  for (const std::string& path : {BackupDir() + "/abs.db", DevDir() + "/backups//abs2.db"}) {
    auto reply = Call("keystore.backup", "", MapOf("path", path));
    ASSERT_TRUE(reply) << path << ": " << reply.error();
    EXPECT_EQ(reply->result().String("path").value_or(""),
              BackupDir() + "/" + fs::path(path).filename().string());
  }
  EXPECT_TRUE(fs::is_regular_file(BackupDir() + "/abs.db"));
  EXPECT_TRUE(fs::is_regular_file(BackupDir() + "/abs2.db"));
}

TEST_F(BackupDirTest, PathsOutsideTheBackupDirectoryAreInvalidArgumentAndWriteNothing) {
  const std::string rule = "in the backup directory " + BackupDir();
  const std::pair<std::string, std::string> cases[] = {
      {"../x", "no '/'"},
      {"../keystore.db", "no '/'"},
      {"a/b", "no '/'"},
      {dir_ / "elsewhere.db", "in another directory"},
      {DevDir() + "/x.db", "in another directory"},
      {"/tmp/x", "in another directory"},
      {".", "'.' and '..' are not file names"},
      {"..", "'.' and '..' are not file names"},
      {"", "the file name is empty"},
      {std::string("nul\0.db", 7), "NUL or control byte"},
      {"new\nline.db", "NUL or control byte"},
      {BackupDir() + "/../x.db", "'.' or '..' component"},
      {BackupDir() + "/../backups/x.db", "'.' or '..' component"},
      {BackupDir() + "/./x.db", "'.' or '..' component"},
      {BackupDir() + "/..", "'.' and '..' are not file names"},
      {BackupDir() + "/", "the file name is empty"},
      {std::string(256, 'x'), "over 255 bytes"},
  };
  const bool tmp_x_existed = fs::exists(fs::symlink_status("/tmp/x"));
  for (const auto& [path, why] : cases) {
    ASSERT_NO_FATAL_FAILURE(ExpectBackupRefused(path, Code::kInvalidArgument, rule));
    ExpectRejected("keystore.backup", "", MapOf("path", path), Code::kInvalidArgument, why);
  }
  EXPECT_EQ(fs::exists(fs::symlink_status("/tmp/x")), tmp_x_existed);
  EXPECT_TRUE(fs::is_empty(BackupDir()));
}

TEST_F(BackupDirTest, ASymlinkPlantedAtTheNameIsAlreadyExistsAndItsTargetStaysUntouched) {
  const std::string missing_target = dir_ / "planted-target.db";
  const std::string existing_target = dir_ / "victim.txt";
  std::ofstream(existing_target) << "precious";
  fs::create_symlink(missing_target, BackupDir() + "/dangling.db");
  fs::create_symlink(existing_target, BackupDir() + "/victim.db");
  ExpectBackupRefused("dangling.db", Code::kAlreadyExists, "already exists");
  ExpectBackupRefused(BackupDir() + "/victim.db", Code::kAlreadyExists, "already exists");
  CommandResult kmsctl = Kmsctl({"keystore", "backup", "dangling.db"});
  EXPECT_EQ(kmsctl.exit_code, ExitCodeFor(Code::kAlreadyExists)) << kmsctl.out << kmsctl.err;
  EXPECT_FALSE(fs::exists(fs::symlink_status(missing_target)));
  EXPECT_EQ(ReadFileBytes(existing_target), "precious");
  EXPECT_TRUE(fs::is_symlink(BackupDir() + "/dangling.db"));
}

TEST_F(BackupDirTest, ASymlinkedSubdirectoryIsNotTheBackupDirectory) {
  fs::create_directory(dir_ / "outside");
  fs::create_directory_symlink(dir_ / "outside", BackupDir() + "/sub");
  ExpectBackupRefused("sub/x.db", Code::kInvalidArgument, "no '/'");
  ExpectBackupRefused(BackupDir() + "/sub/x.db", Code::kInvalidArgument, "in another directory");
  EXPECT_TRUE(fs::is_empty(dir_ / "outside"));
}

TEST_F(BackupDirTest, AnExistingNameIsAlreadyExistsAndKept) {
  std::ofstream(BackupDir() + "/taken.db") << "precious";
  ExpectBackupRefused("taken.db", Code::kAlreadyExists, BackupDir() + "/taken.db already exists");
  CommandResult kmsctl = Kmsctl({"keystore", "backup", "taken.db"});
  EXPECT_EQ(kmsctl.exit_code, ExitCodeFor(Code::kAlreadyExists)) << kmsctl.out << kmsctl.err;
  EXPECT_THAT(kmsctl.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_EQ(ReadFileBytes(BackupDir() + "/taken.db"), "precious");
}

TEST_F(BackupDirTest, KmsctlRefusesOutsidePathsWithTheInvalidArgumentExitCode) {
  for (const std::string& path : {std::string("../x"), dir_ / "x.db", std::string("a/b")}) {
    CommandResult result = Kmsctl({"keystore", "backup", path});
    EXPECT_EQ(result.exit_code, ExitCodeFor(Code::kInvalidArgument)) << path << result.err;
    EXPECT_THAT(result.err, HasSubstr("in the backup directory " + BackupDir()));
  }
  EXPECT_FALSE(fs::exists(dir_ / "x.db"));
  EXPECT_FALSE(fs::exists(DevDir() + "/x"));
  EXPECT_TRUE(fs::is_empty(BackupDir()));
}

// kmsd --dev on a directory whose backups/ kmsd cannot trust: exit 2 (a
// configuration error, like a readable PIN file), the reason on stderr.
class BackupDirStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A first start creates the token, keystore and backups/.
    auto daemon = DaemonProcess::StartDev(DevDir());
    ASSERT_EQ(daemon->Stop(), 0);
  }

  std::string DevDir() const { return dir_ / "dev"; }
  std::string Backups() const { return (fs::canonical(DevDir()) / "backups").string(); }

  void ExpectStartRefused(const std::string& substring) {
    CommandResult result = RunKmsd({"--dev", DevDir()});
    EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
    EXPECT_THAT(result.err, HasSubstr("backup directory " + Backups() + " (keystore.backup_dir)"));
    EXPECT_THAT(result.err, HasSubstr(substring));
    EXPECT_FALSE(fs::exists(DevDir() + "/kmsd.sock"));
  }

  TempDir dir_;
};

TEST_F(BackupDirStartTest, BackupDirectoryReplacedByASymlinkIsRefused) {
  fs::create_directory(dir_ / "elsewhere");
  fs::remove(Backups());
  fs::create_directory_symlink(dir_ / "elsewhere", Backups());
  ExpectStartRefused(Backups() + " is a symlink; it must be a real directory");
  EXPECT_TRUE(fs::is_empty(dir_ / "elsewhere"));
}

TEST_F(BackupDirStartTest, BackupDirectoryWritableByOthersIsRefused) {
  ASSERT_EQ(chmod(Backups().c_str(), 0777), 0);
  ExpectStartRefused("is writable by group or others; chmod 0700 it");
  ASSERT_EQ(chmod(Backups().c_str(), 0700), 0);
  auto daemon = DaemonProcess::StartDev(DevDir());
  EXPECT_EQ(daemon->Stop(), 0);
}

TEST_F(BackupDirStartTest, BackupDirectoryOfAnotherUidIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  ASSERT_EQ(chown(Backups().c_str(), 12345, 12345), 0);
  ExpectStartRefused("is owned by uid 12345, not by kmsd's uid 0");
}

TEST_F(BackupDirStartTest, ABackupDirectoryThatIsAFileIsRefused) {
  fs::remove(Backups());
  std::ofstream(Backups()) << "not a directory";
  ExpectStartRefused("is not a directory");
}

// keystore.backup_dir in a config file.
class BackupDirConfigTest : public ConfiguredKmsdTest {
 protected:
  // The fixture's config with keystore.backup_dir set to `value` (YAML).
  std::string WithBackupDir(const std::string& value) const {
    std::string yaml = ConfigYaml("");
    const std::string line = "  backup_dir: " + (dir_ / "backups") + "\n";
    const size_t at = yaml.find(line);
    EXPECT_NE(at, std::string::npos);
    if (at != std::string::npos) yaml.replace(at, line.size(), "  backup_dir: " + value + "\n");
    return yaml;
  }
};

TEST_F(BackupDirConfigTest, BackupsGoToTheConfiguredDirectoryWhichKmsdCreates) {
  const std::string backups = dir_ / "configured-backups";
  config_path_ = WriteConfig(WithBackupDir(backups));
  daemon_ = DaemonProcess::StartWithConfig(config_path_, socket_path_, dir_ / "kmsd.log", Env());
  connection_ = daemon_->Connect();
  struct stat st;
  ASSERT_EQ(lstat(backups.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto reply = Call("keystore.backup", "", MapOf("path", "c.db"));
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->result().String("path").value_or(""), backups + "/c.db");
  EXPECT_TRUE(fs::is_regular_file(backups + "/c.db"));
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
}

TEST_F(BackupDirConfigTest, ABadBackupDirFieldExits2NamingIt) {
  for (const std::string& bad : {std::string("relative/backups"), std::string("/"),
                                 dir_ / "x/../backups", std::string("\"\"")}) {
    CommandResult result = RunKmsd({"--config", WriteConfig(WithBackupDir(bad))}, Env());
    EXPECT_EQ(result.exit_code, 2) << bad << ": " << result.err;
    EXPECT_THAT(result.err, HasSubstr("field 'keystore.backup_dir'")) << bad;
  }
  // One whose parent is missing is refused at start, with 2 as well.
  CommandResult result =
      RunKmsd({"--config", WriteConfig(WithBackupDir(dir_ / "missing/backups"))}, Env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("its parent " + (dir_ / "missing")));
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

}  // namespace
}  // namespace kmsd::testing
