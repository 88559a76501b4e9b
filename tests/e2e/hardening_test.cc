// End-to-end: what kmsd does to its own process before secrets exist.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

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
  // The first one is unharmed.
  EXPECT_TRUE(Call("health").has_value());
}

}  // namespace
}  // namespace kmsd::testing
