// End-to-end: what kmsd does to its own process before secrets exist.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

std::string ProcFile(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + name);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The value column of one line of /proc/PID/status ("VmLck:   4096 kB").
long StatusValue(const std::string& status, const std::string& field) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

TEST_F(KmsdTest, DaemonCannotDumpCore) {
  const std::string limits = ProcFile(daemon_->pid(), "limits");
  EXPECT_THAT(limits, ::testing::ContainsRegex("Max core file size +0 +0 "));
}

// Its threads say what they are (top, perf): one worker per open connection
// (the fixture's, and the watchdog probe's now and then), the acceptor, the
// watchdog and the audit committer, beside nng's own.
TEST_F(KmsdTest, DaemonThreadsAreNamed) {
  std::map<std::string, int> names;
  const std::filesystem::path tasks = "/proc/" + std::to_string(daemon_->pid()) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    std::getline(in, name);
    ++names[name];
  }
  EXPECT_GE(names["kmsd:worker"], 1);
  EXPECT_LE(names["kmsd:worker"], 2);
  EXPECT_EQ(names["kmsd:accept"], 1);
  EXPECT_EQ(names["kmsd:watchdog"], 1);
  EXPECT_EQ(names["kmsd:audit"], 1);
}

TEST_F(KmsdTest, DaemonHoldsLockedMemoryForSecrets) {
  if (geteuid() != 0)
    GTEST_SKIP() << "mlock of the secure heap needs CAP_IPC_LOCK or a memlock limit";
  EXPECT_GE(StatusValue(ProcFile(daemon_->pid(), "status"), "VmLck"), 4096);
}

TEST_F(KmsdTest, DevDirectoryAndSecretsArePrivate) {
  struct stat st;
  ASSERT_EQ(stat((dir_ / "kmsd").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* name : {"user-pin", "so-pin", "keystore.db", "kmsd.sock"}) {
    ASSERT_EQ(stat((dir_.path() / "kmsd" / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 077, 0u) << name;
  }
}

TEST_F(KmsdTest, SecondDaemonOnTheSameDirectoryRefusesToStart) {
  CommandResult second = RunKmsd({"--dev", dir_ / "kmsd"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.out + second.err, ::testing::HasSubstr("already listening"));
  // The first one is unharmed: it serves, and its sealed audit log (whose
  // head object in the token the second must not touch) still verifies.
  EXPECT_TRUE(Call("health").has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // past a few seals
  auto verified = Call("audit.verify");
  EXPECT_TRUE(verified.has_value()) << verified.error();
}

bool Holds(std::string_view haystack, std::span<const uint8_t> needle) {
  return memmem(haystack.data(), haystack.size(), needle.data(), needle.size()) != nullptr;
}

// Forces a core of a daemon that has handed out data keys and decrypted a
// plaintext (gcore: ptrace, as root; the daemon itself is non-dumpable with
// RLIMIT_CORE 0) and searches it for them. gdb leaves out what the kernel
// would (MADV_DONTDUMP: the secure heap and SecretBuffer pages); freed heap
// memory, where nng's copy of a reply ends, is overwritten on free
// (M_PERTURB, os/linux_system.cc).
TEST_F(KmsdTest, ACoreOfTheDaemonHoldsNoDataKeyOrPlaintextItServed) {
#if KMSD_UNDER_ASAN
  GTEST_SKIP() << "a core of an AddressSanitizer process holds its shadow memory (terabytes); "
                  "the release build runs this test";
#endif
  MustCall("tenant.create", "acme");
  std::vector<Bytes> secrets;
  for (int i = 0; i < 4; ++i) {
    auto key = CallOp<ops::GenerateDataKey>(
        *connection_, "acme",
        {.key = "alias/data", .context = {}, .key_spec = std::nullopt, .number_of_bytes = 64});
    ASSERT_TRUE(key) << key.error();
    secrets.emplace_back(key->plaintext->RevealData(),
                         key->plaintext->RevealData() + key->plaintext->size());
  }
  const std::string canary =
      "plaintext canary " + std::to_string(getpid()) + " " +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  auto decrypted = Decrypt("acme", Encrypt("acme", "alias/data", canary));
  ASSERT_TRUE(decrypted);
  secrets.emplace_back(canary.begin(), canary.end());

  const std::string prefix = dir_ / "core";
  CommandResult dumped =
      RunCommand({"/usr/bin/gcore", "-o", prefix, std::to_string(daemon_->pid())});
  ASSERT_EQ(dumped.exit_code, 0) << dumped.out << dumped.err;
  const std::string path = prefix + "." + std::to_string(daemon_->pid());
  std::ifstream in(path, std::ios::binary);
  const std::string core((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  ASSERT_GT(core.size(), 1u << 20);
  // The search finds what is there: the token's label and the socket's path.
  const std::string label = "kmsd-dev", socket = daemon_->socket_path();
  EXPECT_TRUE(Holds(core, std::span(reinterpret_cast<const uint8_t*>(label.data()), label.size())));
  EXPECT_TRUE(
      Holds(core, std::span(reinterpret_cast<const uint8_t*>(socket.data()), socket.size())));
  for (size_t i = 0; i < secrets.size(); ++i) {
    EXPECT_FALSE(Holds(core, secrets[i])) << "secret " << i << " is in the core";
  }
}

// A process that may not lock the secure heap (no CAP_IPC_LOCK, a 1 MiB
// RLIMIT_MEMLOCK) is refused at start, saying how to raise the limit, before
// any secret exists (the dev dir is not even made).
TEST(KmsdStartTest, RefusesAMemoryLockLimitTooLowForTheSecureHeap) {
  TempDir dir;
  chmod(dir.path().c_str(), 0777);
  CommandResult refused = RunCommand({"/usr/bin/prlimit", "--memlock=1048576", "/usr/bin/setpriv",
                                      "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "--inh-caps=-all", KMSD_BINARY, "--dev", dir / "kmsd"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.err, ::testing::HasSubstr("RLIMIT_MEMLOCK lets kmsd lock 1024 KiB"));
  EXPECT_THAT(refused.err, ::testing::HasSubstr("LimitMEMLOCK="));
  struct stat st;
  EXPECT_NE(stat((dir / "kmsd").c_str(), &st), 0);
}

}  // namespace
}  // namespace kmsd::testing
