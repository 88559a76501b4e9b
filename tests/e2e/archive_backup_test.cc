// Encrypted backups through kmsctl against a real kmsd: round trips (many
// small files, unusual names, a multi-GiB sparse file), the JavaScript SDK
// and GNU tar reading a backup with the escrow key alone, another tenant,
// tampering, archives crafted with Python's tarfile, kills in the middle of
// create and restore, and retention.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "client/backup/backup.h"
#include "client/backup/escrow.h"
#include "client/esdk/kmsd_keyring.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/esdk_js.h"
#include "tests/support/files.h"

namespace kmsd::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// Whether the trees hold the same names, types, contents, link targets and
// modes (`except`: a top-level name to leave out).
::testing::AssertionResult SameTree(const std::string& a, const std::string& b,
                                    const std::string& except = "") {
  std::map<std::string, std::string> sides[2];
  const std::string roots[2] = {a, b};
  for (int side = 0; side < 2; ++side) {
    for (const auto& item : fs::recursive_directory_iterator(roots[side])) {
      const std::string relative = item.path().lexically_relative(roots[side]).string();
      if (!except.empty() && relative == except) continue;
      struct stat info {};
      ::lstat(item.path().c_str(), &info);
      std::string what = std::to_string(info.st_mode) + ":";
      if (S_ISLNK(info.st_mode)) what += fs::read_symlink(item.path()).string();
      if (S_ISREG(info.st_mode)) what += ReadFileBytes(item.path());
      sides[side][relative] = std::move(what);
    }
  }
  if (sides[0] == sides[1]) return ::testing::AssertionSuccess();
  for (const auto& [name, what] : sides[0]) {
    if (!sides[1].contains(name)) return ::testing::AssertionFailure() << name << " missing";
    if (sides[1][name] != what) return ::testing::AssertionFailure() << name << " differs";
  }
  return ::testing::AssertionFailure() << "extra entries in " << b;
}

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<std::string> all = args;
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, all[0].c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

class TreeBackupTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    MustCall("tenant.create", "globex");
    src_ = dir_ / "data";
    fs::create_directories(src_ + "/docs/deep/er");
    for (int i = 0; i < 400; ++i) {
      WriteFileBytes(src_ + "/docs/f" + std::to_string(i),
                     std::string(static_cast<size_t>(i * 13), 'a' + i % 26));
    }
    WriteFileBytes(src_ + "/docs/deep/er/empty", "");
    WriteFileBytes(src_ + "/ünïcode 名前 -x", "unusual");
    fs::create_symlink("docs/f1", src_ + "/link");
    ::chmod((src_ + "/docs/f2").c_str(), 0640);
  }

  CommandResult Kmsctl(std::vector<std::string> args,
                       const std::map<std::string, std::string>& env = {}) {
    return RunKmsctl(daemon_->socket_path(), args, "", env);
  }
  json KmsctlJson(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    const CommandResult result = Kmsctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }
  void MakeEscrowKey() {
    ASSERT_EQ(
        RunCommand({"/usr/bin/openssl", "genrsa", "-out", dir_ / "escrow.key", "2048"}).exit_code,
        0);
    ASSERT_EQ(RunCommand({"/usr/bin/openssl", "rsa", "-in", dir_ / "escrow.key", "-pubout", "-out",
                          dir_ / "escrow.pub"})
                  .exit_code,
              0);
    fs::permissions(dir_ / "escrow.key", fs::perms::owner_read | fs::perms::owner_write);
  }
  // A crafted archive (`tar` bytes) encrypted as acme's backup by kmsctl envelope.
  std::string EncryptAsBackup(const std::string& tar_path) {
    const std::string out = tar_path + ".kmsdbak";
    const CommandResult sealed =
        Kmsctl({"envelope", "encrypt", "--keyring", "kmsd:acme/alias/data", "--context",
                "kmsd-backup-tenant=acme", "--context", "kmsd-backup-created=2026-12-01T00:00:00Z",
                "--in", tar_path, "--out", out});
    EXPECT_EQ(sealed.exit_code, 0) << sealed.err;
    return out;
  }

  std::string src_;
};

TEST_F(TreeBackupTest, ATreeRoundTripsThroughKmsctl) {
  const json created =
      KmsctlJson({"backup", "create", "--tenant", "acme", "--out", dir_ / "b.kmsdbak", src_});
  EXPECT_EQ(created["files"], 402);
  EXPECT_EQ(created["symlinks"], 1);
  EXPECT_EQ(created["tenant"], "acme");
  const json verified = KmsctlJson({"backup", "verify", dir_ / "b.kmsdbak"});
  EXPECT_EQ(verified["verified"], true);
  EXPECT_EQ(verified["files"], 402);
  const json restored = KmsctlJson({"backup", "restore", dir_ / "b.kmsdbak", "--to", dir_ / "out"});
  EXPECT_EQ(restored["files"], 402);
  EXPECT_TRUE(SameTree(src_, dir_ / "out/data"));
  // No plaintext in the archive.
  EXPECT_EQ(ReadFileBytes(dir_ / "b.kmsdbak").find("unusual"), std::string::npos);
  const CommandResult again =
      Kmsctl({"backup", "restore", dir_ / "b.kmsdbak", "--to", dir_ / "out"});
  EXPECT_EQ(again.exit_code, 11) << again.err;  // ALREADY_EXISTS: not empty
}

// A backup with an escrow key is read by the JavaScript SDK with the
// private key alone, and GNU tar unpacks the same tree; kmsctl restores it
// with the private key while kmsd is down.
TEST_F(TreeBackupTest, TheEscrowKeyAloneRestoresThroughTheJavaScriptSdkAndGnuTar) {
  MakeEscrowKey();
  ASSERT_EQ(Kmsctl({"backup", "create", "--tenant", "acme", "--out", dir_ / "b.kmsdbak",
                    "--escrow-public-key", dir_ / "escrow.pub", src_})
                .exit_code,
            0);
  auto name = backup::EscrowKeyName(ReadFileBytes(dir_ / "escrow.pub"));
  ASSERT_TRUE(name.has_value());
  const CommandResult js =
      RunEsdkJs({"decrypt", "--rsa",
                 "kmsd-backup-escrow/" + *name + ":" + (dir_ / "escrow.key") + ":oaep-sha256"},
                ReadFileBytes(dir_ / "b.kmsdbak"));
  ASSERT_EQ(js.exit_code, 0) << js.err;
  WriteFileBytes(dir_ / "b.tar", js.out);
  fs::create_directory(dir_ / "gnu");
  const CommandResult tar = RunCommand({"/usr/bin/tar", "-xf", dir_ / "b.tar", "-C", dir_ / "gnu",
                                        "--exclude=.kmsd-backup-manifest.json"});
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  EXPECT_TRUE(SameTree(src_, dir_ / "gnu/data"));
  daemon_->Stop();
  const CommandResult restored =
      RunKmsctl(dir_ / "no-kmsd.sock", {"backup", "restore", dir_ / "b.kmsdbak", "--to",
                                        dir_ / "out", "--escrow-private-key", dir_ / "escrow.key"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_TRUE(SameTree(src_, dir_ / "out/data"));
  // Without the key, and without kmsd: nothing can be read.
  const CommandResult without =
      RunKmsctl(dir_ / "no-kmsd.sock", {"backup", "verify", dir_ / "b.kmsdbak"});
  EXPECT_EQ(without.exit_code, 9) << without.err;  // UNAVAILABLE
}

TEST_F(TreeBackupTest, AnotherTenantsPrincipalCannotRestore) {
  ASSERT_EQ(
      Kmsctl({"backup", "create", "--tenant", "acme", "--out", dir_ / "b.kmsdbak", src_}).exit_code,
      0);
  AddPrincipal("globex", "app", {"user"});
  auto key = CallOp<ops::ApiKeyCreate>(*connection_, "globex",
                                       {.principal = "app", .expires_in_seconds = std::nullopt});
  ASSERT_TRUE(key.has_value());
  const CommandResult refused =
      Kmsctl({"backup", "restore", dir_ / "b.kmsdbak", "--to", dir_ / "out"},
             {{"KMSD_API_KEY", SecretText(key->secret)}});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;  // ACCESS_DENIED
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(TreeBackupTest, ATamperedBackupWritesNothingAndNamesTheFrame) {
  ASSERT_EQ(
      Kmsctl({"backup", "create", "--tenant", "acme", "--out", dir_ / "b.kmsdbak", src_}).exit_code,
      0);
  std::string bytes = ReadFileBytes(dir_ / "b.kmsdbak");
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFileBytes(dir_ / "b.kmsdbak", bytes);
  const CommandResult verified = Kmsctl({"backup", "verify", dir_ / "b.kmsdbak"});
  EXPECT_EQ(verified.exit_code, 5) << verified.err;  // INVALID_CIPHERTEXT
  EXPECT_THAT(verified.err, HasSubstr("does not authenticate"));
  EXPECT_THAT(verified.err, HasSubstr("frame"));
  const CommandResult restored =
      Kmsctl({"backup", "restore", dir_ / "b.kmsdbak", "--to", dir_ / "out"});
  EXPECT_EQ(restored.exit_code, 5) << restored.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// Archives made by Python's tarfile that try to write outside the target.
TEST_F(TreeBackupTest, CraftedArchivesCannotEscapeTheTarget) {
  const std::string script = R"(
import io, sys, tarfile
case, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    def add(name, data=b'x', kind=tarfile.REGTYPE, link=''):
        info = tarfile.TarInfo(name); info.type = kind; info.linkname = link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    if case == 'dotdot': add('../escaped')
    if case == 'absolute': add(sys.argv[3] + '/escaped')
    if case == 'link-out': add('l', kind=tarfile.SYMTYPE, link='../..' + sys.argv[3])
    if case == 'through-link':
        add('l', kind=tarfile.SYMTYPE, link='.'); add('l/x')
    if case == 'hardlink': add('h', kind=tarfile.LNKTYPE, link='/etc/passwd')
)";
  WriteFileBytes(dir_ / "craft.py", script);
  const std::string outside = dir_ / "outside";
  fs::create_directory(outside);
  for (std::string kind : {"dotdot", "absolute", "link-out", "through-link", "hardlink"}) {
    const std::string tar = dir_ / (kind + ".tar");
    ASSERT_EQ(RunCommand({"/usr/bin/python3", dir_ / "craft.py", kind, tar, outside}).exit_code, 0)
        << kind;
    const std::string archive = EncryptAsBackup(tar);
    const std::string target = dir_ / ("to-" + kind);
    const CommandResult restored = Kmsctl({"backup", "restore", archive, "--to", target});
    EXPECT_EQ(restored.exit_code, 5) << kind << ": " << restored.err;
    EXPECT_FALSE(fs::exists(target)) << kind;
    EXPECT_TRUE(fs::is_empty(outside)) << kind;
    EXPECT_FALSE(fs::exists(dir_ / "escaped")) << kind;
  }
}

// kmsctl killed (SIGKILL) at a random point of a create leaves no archive or
// a whole one; of a restore, no target or a whole one.
TEST_F(TreeBackupTest, KillsInTheMiddleLeaveNothingOrTheWhole) {
  const std::string kmsctl = KMSCTL_BINARY;
  const std::string socket = daemon_->socket_path();
  WriteFileBytes(src_ + "/bulk", std::string(8 << 20, 'b'));
  const auto timed = [](const std::function<void()>& run) {
    const auto started = std::chrono::steady_clock::now();
    run();
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 started);
  };
  const auto create_time = timed([&] {
    ASSERT_EQ(
        Kmsctl({"backup", "create", "--tenant", "acme", "--out", dir_ / "whole", src_}).exit_code,
        0);
  });
  const auto restore_time = timed([&] {
    ASSERT_EQ(Kmsctl({"backup", "restore", dir_ / "whole", "--to", dir_ / "r0"}).exit_code, 0);
  });
  std::mt19937 random(std::random_device{}());
  int whole = 0, nothing = 0;
  for (int round = 1; round <= 6; ++round) {
    const std::string out = dir_ / ("b" + std::to_string(round));
    pid_t pid = Spawn(
        {kmsctl, "--socket", socket, "backup", "create", "--tenant", "acme", "--out", out, src_});
    std::this_thread::sleep_for(std::chrono::microseconds(random() % (create_time.count() + 1)));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (fs::exists(out)) {
      ++whole;
      EXPECT_EQ(Kmsctl({"backup", "verify", out}).exit_code, 0) << "a torn archive";
    } else {
      ++nothing;
    }
    const std::string target = dir_ / ("r" + std::to_string(round));
    pid = Spawn({kmsctl, "--socket", socket, "backup", "restore", dir_ / "whole", "--to", target});
    std::this_thread::sleep_for(std::chrono::microseconds(random() % (restore_time.count() + 1)));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (fs::exists(target)) {
      ++whole;
      EXPECT_TRUE(SameTree(src_, target + "/data")) << "a partial restore";
    } else {
      ++nothing;
    }
  }
  std::cout << "killed: " << whole << " whole results, " << nothing << " nothing\n";
}

TEST_F(TreeBackupTest, PruneKeepsTheNewestAndTheRecentOfEachTenant) {
  const std::string store = dir_ / "backups";
  fs::create_directory(store);
  const int64_t now = ::time(nullptr);
  const int64_t day = 86400;
  for (const auto& [tenant, age_days] : std::vector<std::pair<std::string, int>>{
           {"acme", 0}, {"acme", 2}, {"acme", 10}, {"acme", 40}, {"globex", 30}}) {
    esdk::KmsdKeyring keyring(*connection_, tenant, "alias/data");
    esdk::KeyringMaterials materials(keyring);
    std::ofstream out(store + "/" + tenant + "-" + std::to_string(age_days), std::ios::binary);
    auto made =
        backup::CreateBackup(materials, tenant, backup::Rfc3339(now - age_days * day),
                             {{src_ + "/docs/deep", "deep"}}, [&](std::span<const uint8_t> bytes) {
                               out.write(reinterpret_cast<const char*>(bytes.data()),
                                         static_cast<std::streamsize>(bytes.size()));
                               return OkStatus();
                             });
    ASSERT_TRUE(made.has_value()) << made.error();
  }
  WriteFileBytes(store + "/notes.txt", "not a backup");
  const json dry = KmsctlJson(
      {"backup", "prune", "--keep-last", "1", "--keep-within", "7d", "--dry-run", store});
  EXPECT_EQ(dry["removed"].size(), 2u) << dry;
  EXPECT_TRUE(fs::exists(store + "/acme-40"));
  const json pruned =
      KmsctlJson({"backup", "prune", "--keep-last", "1", "--keep-within", "7d", store});
  EXPECT_EQ(pruned["removed"].size(), 2u);
  EXPECT_FALSE(fs::exists(store + "/acme-10"));
  EXPECT_FALSE(fs::exists(store + "/acme-40"));
  EXPECT_TRUE(fs::exists(store + "/acme-0"));
  EXPECT_TRUE(fs::exists(store + "/acme-2"));
  EXPECT_TRUE(fs::exists(store + "/globex-30"));  // its tenant's newest
  EXPECT_TRUE(fs::exists(store + "/notes.txt"));
  const CommandResult no_rule = Kmsctl({"backup", "prune", store});
  EXPECT_EQ(no_rule.exit_code, 2) << no_rule.err;
}

// On a terminal (script(1)'s pseudo-terminal) create and restore show their
// progress, against the total where it is known; with --json, nothing.
TEST_F(TreeBackupTest, ProgressShowsOnATerminalOnly) {
  // After the small files (names sort bytewise), long enough to draw again.
  WriteFileBytes(src_ + "/zz-bulk", std::string(96 << 20, 'p'));
  const std::string base = std::string(KMSCTL_BINARY) + " --socket " + daemon_->socket_path() + " ";
  const std::string create =
      base + "backup create --tenant acme --out " + (dir_ / "b.kmsdbak") + " " + src_;
  const CommandResult shown = RunCommand({"/usr/bin/script", "-qec", create, "/dev/null"});
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_THAT(shown.out, HasSubstr("backing up: "));
  // The total is known up front (a walk of the tree): the line can say how
  // much is left (how often it is redrawn depends on the machine's speed).
  EXPECT_THAT(shown.out, HasSubstr(" of 97.0 MiB ("));
  const CommandResult restore = RunCommand(
      {"/usr/bin/script", "-qec",
       base + "backup restore " + (dir_ / "b.kmsdbak") + " --to " + (dir_ / "out"), "/dev/null"});
  ASSERT_EQ(restore.exit_code, 0) << restore.out;
  EXPECT_THAT(restore.out, HasSubstr("verifying: "));
  EXPECT_THAT(restore.out, HasSubstr("restoring: "));
  const CommandResult quiet =
      RunCommand({"/usr/bin/script", "-qec", base + "--json backup verify " + (dir_ / "b.kmsdbak"),
                  "/dev/null"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out;
  EXPECT_EQ(quiet.out.find("verifying: "), std::string::npos) << quiet.out;
}

// A file over 2 GiB (sparse on disk) goes through create, verify and
// restore whole, and comes back sparse. The archive (2.25 GiB) goes to
// /dev/shm where there is one (twice as fast as the disk here), and is
// removed after.
TEST_F(TreeBackupTest, AMultiGibSparseFileRoundTrips) {
  const std::string big = dir_ / "big";
  fs::create_directory(big);
  constexpr int64_t kSize = 2304LL << 20;  // 2.25 GiB: past 2^31
  {
    const int fd = ::open((big + "/sparse.img").c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "head", 4, 0), 4);
    ASSERT_EQ(::pwrite(fd, "tail", 4, kSize - 4), 4);
    ::close(fd);
  }
  std::string shm_template = "/dev/shm/kmsd-backup-XXXXXX";
  const bool on_shm = ::mkdtemp(shm_template.data()) != nullptr;
  const std::string archive_dir = on_shm ? shm_template : std::string(dir_ / "");
  struct Remove {
    std::string path;
    bool active;
    ~Remove() {
      if (active) fs::remove_all(path);
    }
  } remove{archive_dir, on_shm};
  const std::string archive = archive_dir + "/big.kmsdbak";
  ASSERT_EQ(Kmsctl({"backup", "create", "--tenant", "acme", "--out", archive, big}).exit_code, 0);
  const json verified = KmsctlJson({"backup", "verify", archive});
  EXPECT_EQ(verified["bytes"], kSize);
  ASSERT_EQ(Kmsctl({"backup", "restore", archive, "--to", dir_ / "out"}).exit_code, 0);
  fs::remove(archive);
  const std::string copy = dir_ / "out/big/sparse.img";
  EXPECT_EQ(fs::file_size(copy), static_cast<uintmax_t>(kSize));
  // The same bytes: "head", zeros, "tail". Holes read as zeros, so only the
  // data the restore wrote needs reading (cmp would read 4.5 GB of holes).
  const int fd = ::open(copy.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char edge[4];
  ASSERT_EQ(::pread(fd, edge, 4, 0), 4);
  EXPECT_EQ(std::string(edge, 4), "head");
  ASSERT_EQ(::pread(fd, edge, 4, kSize - 4), 4);
  EXPECT_EQ(std::string(edge, 4), "tail");
  int64_t data_bytes = 0;
  for (off_t at = ::lseek(fd, 0, SEEK_DATA); at >= 0 && at < kSize;
       at = ::lseek(fd, at, SEEK_DATA)) {
    const off_t hole = ::lseek(fd, at, SEEK_HOLE);
    std::string data(static_cast<size_t>(hole - at), '\0');
    ASSERT_EQ(::pread(fd, data.data(), data.size(), at), static_cast<ssize_t>(data.size()));
    for (size_t i = 0; i < data.size(); ++i) {
      const int64_t offset = at + static_cast<int64_t>(i);
      if (offset >= 4 && offset < kSize - 4) {
        ASSERT_EQ(data[i], '\0') << offset;
      }
    }
    data_bytes += hole - at;
    at = hole;
  }
  ::close(fd);
  EXPECT_LT(data_bytes, 16 << 20) << "the restored file is not sparse";
}

}  // namespace
}  // namespace kmsd::testing
