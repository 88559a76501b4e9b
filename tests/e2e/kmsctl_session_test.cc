// End-to-end: kmsctl login, logout, session list|revoke, mfa enroll and the
// session credential (--session-file, $KMSD_SESSION_FILE) against a real
// kmsd (docs/CLI.md, "Sessions and MFA"). The test's uid is the dev daemon's
// admin: kmsctl runs without a credential are the admin's. Every run gets
// XDG_RUNTIME_DIR pointing into the test's directory, never the user's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "protocol/access_types.h"
#include "tests/e2e/cli_exit_codes.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

const std::regex kTokenPattern("kmsd_st_[0-9a-f]{16}_[A-Za-z0-9_-]{43}");
const std::regex kSeedLine("\nsecret: ([A-Z2-7]{16,})\n");

using Env = std::map<std::string, std::string>;

// The QR code kmsctl drew after the `otpauth_uri:` line, as modules (true:
// dark), read back from its half blocks: light is drawn, dark is blank.
std::vector<std::vector<bool>> QrModules(const std::string& out) {
  std::vector<std::vector<bool>> rows;
  std::istringstream lines(out.substr(out.find("\n", out.find("otpauth_uri:")) + 1));
  const std::string kFull = "█", kUpper = "▀", kLower = "▄";
  for (std::string line; std::getline(lines, line);) {
    std::vector<bool> top, bottom;
    for (size_t i = 0; i < line.size();) {
      const bool space = line[i] == ' ';
      const std::string block = space ? " " : line.substr(i, kFull.size());
      top.push_back(block != kFull && block != kUpper);
      bottom.push_back(block != kFull && block != kLower);
      i += block.size();
    }
    rows.push_back(top);
    rows.push_back(bottom);
  }
  return rows;
}

// A QR code's finder pattern at (row, column): a dark ring of 7 x 7 modules,
// a light one, a dark 3 x 3 centre.
bool FinderAt(const std::vector<std::vector<bool>>& modules, size_t row, size_t column) {
  for (size_t i = 0; i < 7; ++i) {
    for (size_t j = 0; j < 7; ++j) {
      const size_t ring = std::max(i > 3 ? i - 3 : 3 - i, j > 3 ? j - 3 : 3 - j);
      if (modules[row + i][column + j] != (ring != 2)) return false;
    }
  }
  return true;
}

class KmsctlSessionTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    runtime_ = dir_ / "run";
    ASSERT_EQ(::mkdir(runtime_.c_str(), 0700), 0);
  }

  // kmsctl --socket SOCKET args..., with XDG_RUNTIME_DIR and `env` added to
  // the environment.
  CommandResult Kmsctl(const std::vector<std::string>& args, Env env = {},
                       const std::string& input = "") {
    env.emplace("XDG_RUNTIME_DIR", runtime_);
    return RunKmsctl(daemon_->socket_path(), args, input, env);
  }

  // A new API key of `principal`, as text.
  std::string NewKey(const std::string& principal) {
    auto key = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                         {.principal = principal, .expires_in_seconds = {}});
    EXPECT_TRUE(key) << key.error();
    return key ? SecretText(key->secret) : "";
  }

  std::string DefaultFile(const std::string& principal) const {
    return runtime_ + "/kmsctl/session-acme." + principal;
  }

  // kmsctl login as `principal` with `key`; its session file's path.
  std::string Login(const std::string& principal, const std::string& key,
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"login", "--tenant", "acme", "--principal", principal};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult login = Kmsctl(args, {{"KMSD_API_KEY", key}});
    EXPECT_EQ(login.exit_code, 0) << login.err;
    return DefaultFile(principal);
  }

  // encrypt with alias/data, credentials given by `args` and `env`.
  CommandResult Encrypt(std::vector<std::string> args, Env env = {}) {
    for (const char* arg : {"encrypt", "--tenant", "acme", "--key", "alias/data"}) {
      args.push_back(arg);
    }
    return Kmsctl(args, std::move(env), "plaintext");
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // A copy of the session file `from` at `to`, mode 0600.
  static void CopyPrivate(const std::string& from, const std::string& to) {
    std::ofstream(to) << ReadFile(from);
    ASSERT_EQ(::chmod(to.c_str(), 0600), 0);
  }

  static mode_t ModeOf(const std::string& path) {
    struct stat info {};
    EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
  }

  static bool Exists(const std::string& path) { return std::filesystem::exists(path); }

  std::string runtime_;
};

TEST_F(KmsctlSessionTest, LoginStoresAPrivateSessionThatActsAsThePrincipal) {
  AddPrincipal("acme", "app", {"user"});
  AddPrincipal("acme", "auditor", {"viewer"});
  const std::string key = NewKey("app");
  CommandResult login =
      Kmsctl({"login", "--tenant", "acme", "--principal", "app"}, {{"KMSD_API_KEY", key}});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  const std::string file = DefaultFile("app");
  EXPECT_THAT(login.out, HasSubstr("principal: app\n"));
  EXPECT_THAT(login.out, HasSubstr("mfa: false\n"));
  EXPECT_FALSE(std::regex_search(login.out, kTokenPattern)) << login.out;
  EXPECT_THAT(login.err, HasSubstr("session stored in " + file + "; use it with --session-file " +
                                   file + " or KMSD_SESSION_FILE=" + file));
  EXPECT_EQ(ModeOf(runtime_ + "/kmsctl"), 0700u);
  EXPECT_EQ(ModeOf(file), 0600u);
  const std::string token = ReadFile(file);
  EXPECT_TRUE(std::regex_match(token, std::regex("kmsd_st_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n")))
      << token;

  CommandResult by_flag = Encrypt({"--session-file", file});
  EXPECT_EQ(by_flag.exit_code, 0) << by_flag.err;
  EXPECT_FALSE(by_flag.out.empty());
  CommandResult by_environment = Encrypt({}, {{"KMSD_SESSION_FILE", file}});
  EXPECT_EQ(by_environment.exit_code, 0) << by_environment.err;

  // Precedence: --api-key-file, --session-file, $KMSD_API_KEY, $KMSD_SESSION_FILE.
  const std::string viewer_key = NewKey("auditor");
  const std::string viewer_file = dir_ / "viewer.key";
  std::ofstream(viewer_file) << viewer_key;
  ASSERT_EQ(::chmod(viewer_file.c_str(), 0600), 0);
  EXPECT_EQ(Encrypt({"--api-key-file", viewer_file, "--session-file", file}).exit_code,
            ExitCodeFor(Code::kAccessDenied));
  EXPECT_EQ(Encrypt({"--session-file", file}, {{"KMSD_API_KEY", viewer_key}}).exit_code, 0);
  EXPECT_EQ(Encrypt({}, {{"KMSD_API_KEY", viewer_key}, {"KMSD_SESSION_FILE", file}}).exit_code,
            ExitCodeFor(Code::kAccessDenied));

  // A session file is checked as an API key file is.
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  CommandResult shared = Encrypt({"--session-file", file});
  EXPECT_EQ(shared.exit_code, kUsageExit);
  EXPECT_THAT(shared.err, HasSubstr("session file '" + file + "' is accessible by group"));
  EXPECT_THAT(shared.err, Not(HasSubstr(token.substr(0, 20))));

  // --session-file names the file to store in.
  const std::string chosen = dir_ / "chosen.session";
  CommandResult to_file =
      Kmsctl({"login", "--tenant", "acme", "--principal", "app", "--session-file", chosen},
             {{"KMSD_API_KEY", key}});
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(ModeOf(chosen), 0600u);
  EXPECT_EQ(Encrypt({"--session-file", chosen}).exit_code, 0);
}

TEST_F(KmsctlSessionTest, JsonLoginPrintsTheTokenAndStoresNoFile) {
  AddPrincipal("acme", "app", {"user"});
  const std::string key = NewKey("app");
  CommandResult login = Kmsctl({"--json", "login", "--tenant", "acme", "--principal", "app"},
                               {{"KMSD_API_KEY", key}});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  const json reply = json::parse(login.out);
  ASSERT_TRUE(reply["session"].is_string()) << login.out;
  const std::string token = reply["session"];
  EXPECT_TRUE(std::regex_match(token, kTokenPattern)) << token;
  EXPECT_THAT(token, HasSubstr("kmsd_st_" + reply["id"].get<std::string>() + "_"));
  EXPECT_EQ(reply["principal"], "app");
  EXPECT_EQ(reply["mfa"], false);
  EXPECT_EQ(login.err, "");
  EXPECT_FALSE(Exists(runtime_ + "/kmsctl"));
  // The token is a credential like an API key.
  EXPECT_EQ(Encrypt({}, {{"KMSD_API_KEY", token}}).exit_code, 0);
}

TEST_F(KmsctlSessionTest, LoginRefusesBadArgumentsBeforeSending) {
  AddPrincipal("acme", "app", {"user"});
  const std::string key = NewKey("app");
  const std::vector<std::string> login = {"login", "--tenant", "acme", "--principal", "app"};
  CommandResult no_key = Kmsctl(login);
  EXPECT_EQ(no_key.exit_code, kUsageExit);
  EXPECT_THAT(no_key.err, HasSubstr("API key"));
  for (const char* code : {"abc", "12345", "1234567", "12345a"}) {
    std::vector<std::string> args = login;
    args.insert(args.end(), {"--totp", code});
    CommandResult bad = Kmsctl(args, {{"KMSD_API_KEY", key}});
    EXPECT_EQ(bad.exit_code, kUsageExit) << code;
    EXPECT_THAT(bad.err, HasSubstr("--totp")) << code;
  }
  // A session never opens another.
  Login("app", key);
  CommandResult with_session = Kmsctl(login, {{"KMSD_SESSION_FILE", DefaultFile("app")}});
  EXPECT_EQ(with_session.exit_code, kUsageExit) << with_session.err;
  // Without XDG_RUNTIME_DIR, login needs --session-file (or --json).
  CommandResult nowhere = Kmsctl(login, {{"KMSD_API_KEY", key}, {"XDG_RUNTIME_DIR", ""}});
  EXPECT_EQ(nowhere.exit_code, kUsageExit);
  EXPECT_THAT(nowhere.err, HasSubstr("--session-file"));
  // Only the first login opened a session.
  CommandResult list = Kmsctl({"--json", "session", "list", "--tenant", "acme"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(json::parse(list.out)["sessions"].size(), 1u);
}

TEST_F(KmsctlSessionTest, LogoutEndsTheSessionAndRemovesItsFile) {
  AddPrincipal("acme", "app", {"user"});
  const std::string file = Login("app", NewKey("app"));
  const std::string copy = dir_ / "copy.session";
  CopyPrivate(file, copy);
  ASSERT_EQ(Encrypt({"--session-file", copy}).exit_code, 0);
  MustCall("tenant.create", "globex");

  // Another tenant than the session's is refused; the session and its file stay.
  CommandResult elsewhere = Kmsctl({"logout", "--tenant", "globex", "--session-file", file});
  EXPECT_EQ(elsewhere.exit_code, ExitCodeFor(Code::kAccessDenied)) << elsewhere.err;
  EXPECT_THAT(elsewhere.err, HasSubstr("own tenant"));
  EXPECT_TRUE(Exists(file));

  CommandResult logout = Kmsctl({"logout", "--tenant", "acme", "--principal", "app"});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_THAT(logout.out, HasSubstr("principal: app\n"));
  EXPECT_FALSE(Exists(file));
  CommandResult refused = Encrypt({"--session-file", copy});
  EXPECT_EQ(refused.exit_code, ExitCodeFor(Code::kAccessDenied)) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("ACCESS_DENIED"));

  // Ending it again: kmsd refuses the session, and its file goes too.
  CommandResult again = Kmsctl({"logout", "--tenant", "acme"}, {{"KMSD_SESSION_FILE", copy}});
  EXPECT_EQ(again.exit_code, ExitCodeFor(Code::kAccessDenied)) << again.err;
  EXPECT_EQ(again.out, "");
  EXPECT_FALSE(Exists(copy));

  // A session whose API key was revoked ended with it: logout removes its file.
  const std::string key = NewKey("app");
  const std::string second = Login("app", key);
  ASSERT_EQ(Kmsctl({"apikey", "revoke", "--tenant", "acme", key.substr(8, 16)}).exit_code, 0);
  CommandResult key_gone = Kmsctl({"logout", "--tenant", "acme", "--principal", "app"});
  EXPECT_EQ(key_gone.exit_code, ExitCodeFor(Code::kAccessDenied)) << key_gone.err;
  EXPECT_THAT(key_gone.err, HasSubstr("revoked"));
  EXPECT_FALSE(Exists(second));

  // A file that holds no session token (an API key named by mistake) is
  // never sent, and never removed.
  const std::string not_a_session = dir_ / "key.file";
  {
    std::ofstream out(not_a_session);
    out << NewKey("app") << "\n";
  }
  ::chmod(not_a_session.c_str(), 0600);
  CommandResult mistaken = Kmsctl({"logout", "--tenant", "acme", "--session-file", not_a_session});
  EXPECT_EQ(mistaken.exit_code, kUsageExit) << mistaken.err;
  EXPECT_THAT(mistaken.err, HasSubstr("does not hold a kmsd session token"));
  EXPECT_TRUE(Exists(not_a_session));

  // Without a file to end, logout is a usage error.
  EXPECT_EQ(Kmsctl({"logout", "--tenant", "acme"}).exit_code, kUsageExit);
  EXPECT_EQ(Kmsctl({"logout", "--tenant", "acme", "--principal", "app"}).exit_code, kUsageExit);
}

TEST_F(KmsctlSessionTest, AnAdminListsAndRevokesSessions) {
  AddPrincipal("acme", "app", {"user"});
  const std::string key = NewKey("app");
  const std::string file = Login("app", key);
  const std::string id = ReadFile(file).substr(8, 16);

  CommandResult table = Kmsctl({"session", "list", "--tenant", "acme"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("ID"));
  EXPECT_THAT(table.out, HasSubstr("API_KEY"));
  EXPECT_THAT(table.out, HasSubstr("IDLE_TIMEOUT"));
  EXPECT_THAT(table.out, HasSubstr(id));
  EXPECT_THAT(table.out, HasSubstr(key.substr(8, 16)));
  EXPECT_FALSE(std::regex_search(table.out, kTokenPattern)) << table.out;
  CommandResult listed = Kmsctl({"--json", "session", "list", "--tenant", "acme"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const json sessions = json::parse(listed.out)["sessions"];
  ASSERT_EQ(sessions.size(), 1u) << listed.out;
  EXPECT_EQ(sessions[0]["id"], id);
  EXPECT_EQ(sessions[0]["principal"], "app");
  EXPECT_EQ(sessions[0]["mfa"], false);
  EXPECT_FALSE(std::regex_search(listed.out, kTokenPattern)) << listed.out;

  CommandResult revoked = Kmsctl({"session", "revoke", "--tenant", "acme", id});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_THAT(revoked.out, HasSubstr("id: " + id + "\n"));
  CommandResult refused = Encrypt({"--session-file", file});
  EXPECT_EQ(refused.exit_code, ExitCodeFor(Code::kAccessDenied)) << refused.err;
  EXPECT_EQ(Kmsctl({"session", "revoke", "--tenant", "acme"}).exit_code, kUsageExit);
}

TEST_F(KmsctlSessionTest, MfaEnrollShowsTheSeedAndATotpCodeOpensAnMfaSession) {
  AddPrincipal("acme", "app", {"user"});
  CommandResult enroll = Kmsctl({"mfa", "enroll", "--tenant", "acme", "--principal", "app"});
  ASSERT_EQ(enroll.exit_code, 0) << enroll.err;
  EXPECT_THAT(enroll.out, HasSubstr("otpauth_uri: otpauth://totp/"));
  std::smatch seed;
  ASSERT_TRUE(std::regex_search(enroll.out, seed, kSeedLine)) << enroll.out;
  const std::string secret = seed[1];
  EXPECT_THAT(enroll.out, HasSubstr("secret=" + secret));
  // The QR code: a quiet zone of 2 light modules around a symbol of 4v+17
  // modules with its three finder patterns.
  const std::vector<std::vector<bool>> modules = QrModules(enroll.out);
  ASSERT_GE(modules.size(), 25u) << enroll.out;
  const size_t size = modules[0].size(), symbol = size - 4;
  EXPECT_EQ((symbol - 17) % 4, 0u) << size;
  ASSERT_GE(modules.size(), size);  // one blank row more when the count is odd
  for (size_t row = 0; row < size; ++row) {
    ASSERT_EQ(modules[row].size(), size) << row;
    for (size_t column : {size_t{0}, size_t{1}, size - 2, size - 1}) {
      EXPECT_FALSE(modules[row][column] || modules[column][row]) << row << "," << column;
    }
  }
  EXPECT_TRUE(FinderAt(modules, 2, 2));
  EXPECT_TRUE(FinderAt(modules, 2, size - 9));
  EXPECT_TRUE(FinderAt(modules, size - 9, 2));
  EXPECT_FALSE(FinderAt(modules, size - 9, size - 9));
  EXPECT_THAT(enroll.err, HasSubstr("shown this once"));

  CommandResult as_json =
      Kmsctl({"--json", "mfa", "enroll", "--tenant", "acme", "--principal", "app"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  const json enrolled = json::parse(as_json.out);
  ASSERT_TRUE(enrolled["secret"].is_string()) << as_json.out;
  const std::string json_secret = enrolled["secret"];
  EXPECT_TRUE(std::regex_match(json_secret, std::regex("[A-Z2-7]{16,}"))) << json_secret;
  EXPECT_THAT(enrolled["otpauth_uri"].get<std::string>(), HasSubstr("secret=" + json_secret));
  EXPECT_THAT(as_json.out, Not(HasSubstr("█")));

  // The latest seed counts; its code opens a session marked mfa, once.
  CommandResult totp = RunCommand({"/usr/bin/oathtool", "--totp", "-b", json_secret});
  ASSERT_EQ(totp.exit_code, 0) << totp.err;
  const std::string code = totp.out.substr(0, totp.out.find('\n'));
  ASSERT_EQ(code.size(), 6u) << totp.out;
  const std::string key = NewKey("app");
  const std::vector<std::string> login = {"login", "--tenant", "acme", "--principal",
                                          "app",   "--totp",   code};
  CommandResult first = Kmsctl(login, {{"KMSD_API_KEY", key}});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("mfa: true\n"));
  EXPECT_EQ(Encrypt({"--session-file", DefaultFile("app")}).exit_code, 0);
  CommandResult replayed = Kmsctl(login, {{"KMSD_API_KEY", key}});
  EXPECT_EQ(replayed.exit_code, ExitCodeFor(Code::kAccessDenied)) << replayed.err;
  EXPECT_THAT(replayed.err, HasSubstr("already used"));
}

}  // namespace
}  // namespace kmsd::testing
