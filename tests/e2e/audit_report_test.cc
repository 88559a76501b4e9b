// kmsctl audit report end to end: a month's report of a tenant with a denial,
// a key past its rotation period, principals that may both manage and use a
// key, and a grant; the HTML page rendered by headless Chromium (Debian's
// chromium) without script errors, showing whether the period's log
// verifies; and a log edited while kmsd was stopped reported as such.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "tests/e2e/config_fixture.h"
#include "tests/support/audit_log_files.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
namespace fs = std::filesystem;

std::string ThisMonth() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char month[8];
  std::strftime(month, sizeof month, "%Y-%m", &utc);
  return month;
}

class AuditReportTest : public ConfiguredKmsdTest {
 protected:
  void SetUp() override {
    ConfiguredKmsdTest::SetUp();
    // Due work only at start and each minute: a key past its period stays so.
    Start("lifecycle:\n  min_rotation_period_seconds: 1\n  check_interval_ms: 60000\n");
    ASSERT_TRUE(Call("tenant.create", "acme"));
    for (const auto& [name, roles] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"boss", {"manager", "user"}}, {"ops", {"manager"}}, {"looker", {"viewer"}}}) {
      ASSERT_TRUE(CallOp<ops::PrincipalCreate>(
          *connection_, "acme", {.name = name, .roles = roles, .uids = {}, .gids = {}}));
    }
    ASSERT_TRUE(CallOp<ops::GrantCreate>(*connection_, "acme",
                                         {.key = "alias/data",
                                          .principal = "ops",
                                          .operations = {"encrypt"},
                                          .expires_in_seconds = std::nullopt,
                                          .context = std::nullopt}));
    // A denial: the viewer tries to encrypt.
    auto key = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                         {.principal = "looker", .expires_in_seconds = {}});
    ASSERT_TRUE(key);
    auto looker = Connection::Dial(socket_path_, std::chrono::milliseconds(10000),
                                   kDefaultMaxRequestBytes, std::move(key->secret));
    ASSERT_TRUE(looker);
    EXPECT_EQ((*looker)
                  ->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bytes{1}))
                  .error()
                  .code(),
              Code::kAccessDenied);
    // A key past its rotation period (1 s), not rotated for a minute.
    ASSERT_TRUE(Call("key.set-rotation", "acme",
                     MapOf("key", "alias/secrets", "rotation_period_seconds", int64_t{1})));
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  }

  // kmsctl audit report --json, and its page in `html`. An export that ends
  // in entries kmsd has not sealed yet (written since its last commit, e.g.
  // by due work on a slow sanitizer build) is asked again after a commit.
  Json Report(const std::string& html) {
    for (int attempt = 0;; ++attempt) {
      const CommandResult result =
          RunKmsctl(socket_path_, {"--json", "audit", "report", "--tenant", "acme", "--period",
                                   ThisMonth(), "--html", html});
      EXPECT_EQ(result.exit_code, 0) << result.err;
      Json report = Json::parse(result.out, nullptr, false);
      const bool unsealed_tail =
          report.is_object() && report["log"].dump().find("is not sealed yet") != std::string::npos;
      if (!unsealed_tail || attempt == 10) return report;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }

  // The page as headless Chromium leaves it after its scripts ran.
  std::string RenderedDom(const std::string& html) {
    const CommandResult dom = RunCommand({"/usr/bin/chromium", "--headless", "--no-sandbox",
                                          "--disable-gpu", "--dump-dom", "file://" + html});
    EXPECT_EQ(dom.exit_code, 0) << dom.err;
    return dom.out;
  }
};

TEST_F(AuditReportTest, AMonthsReportNamesWhatTheSeedsAskAndRendersInChromium) {
  const std::string html = dir_ / "report.html";
  const Json report = Report(html);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["log"]["verified"], true) << report["log"].dump();
  EXPECT_GE(report["requests"]["total"].get<uint64_t>(), 8u);
  EXPECT_EQ(report["requests"]["denied"], 1);
  bool looker_denied = false;
  for (const Json& p : report["requests"]["by_principal"]) {
    if (p["principal"] == "looker") looker_denied = p["denied"] == 1 && p["by_op"]["encrypt"] == 1;
  }
  EXPECT_TRUE(looker_denied) << report["requests"].dump();
  ASSERT_EQ(report["late_rotations"].size(), 1u) << report.dump();
  EXPECT_EQ(report["late_rotations"][0]["key"], "secrets-key");
  EXPECT_EQ(report["late_rotations"][0]["rotated"], "not yet");
  std::map<std::string, Json> conflicts;
  for (const Json& c : report["segregation"]) conflicts[c["principal"]] = c["keys"];
  EXPECT_EQ(conflicts.size(), 2u) << report["segregation"].dump();
  EXPECT_EQ(conflicts["boss"], "every key");
  EXPECT_EQ(conflicts["ops"], Json({"data-encryption-key"}));
  ASSERT_EQ(report["grants"].size(), 1u);
  EXPECT_EQ(report["grants"][0]["principal"], "ops");

  // A self-contained page: no reference to anything outside it.
  std::ifstream in(html);
  const std::string page((std::istreambuf_iterator<char>(in)), {});
  for (const char* scheme : {"http://", "https://", "//"}) {
    for (size_t at = page.find(scheme); at != std::string::npos; at = page.find(scheme, at + 1)) {
      // The one URL: the SVG namespace, a name and not a fetch.
      const bool svg_namespace = page.compare(at, 26, "http://www.w3.org/2000/svg") == 0 ||
                                 page.compare(at, 19, "//www.w3.org/2000/s") == 0;
      EXPECT_TRUE(svg_namespace) << page.substr(at, 60);
    }
  }
  const std::string dom = RenderedDom(html);
  EXPECT_THAT(dom, HasSubstr("data-rendered=\"ok\""));
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("data-error")));
  EXPECT_THAT(dom, HasSubstr("Log verified"));
  EXPECT_THAT(dom, HasSubstr("looker"));
  EXPECT_THAT(dom, HasSubstr("secrets-key"));
  // Each bar got its tooltip from the page's script.
  EXPECT_THAT(dom, HasSubstr("requests, 1 denied</title>"));
  const std::string png = dir_ / "report.png";
  const CommandResult shot =
      RunCommand({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                  "--window-size=1000,1400", "--screenshot=" + png, "file://" + html});
  EXPECT_EQ(shot.exit_code, 0) << shot.err;
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 20000u);  // a page with text and a chart, not a blank one
}

TEST_F(AuditReportTest, ALogEditedWhileKmsdWasStoppedIsReportedAsNotVerifying) {
  Stop();
  const fs::path audit = dir_ / "audit";
  AuditLines files = ReadAuditLines(audit);
  bool edited = false;
  for (auto& [name, lines] : files) {
    for (std::string& line : lines) {
      const size_t at = line.find("\"outcome\":\"ACCESS_DENIED\"");
      if (at != std::string::npos && !edited) {
        line.replace(at, 25, "\"outcome\":\"OK\"           ");  // the same length
        edited = true;
      }
    }
  }
  ASSERT_TRUE(edited);
  WriteAuditLines(audit, files);
  Restart();
  const std::string html = dir_ / "tampered.html";
  const Json report = Report(html);
  EXPECT_EQ(report["log"]["verified"], false) << report["log"].dump();
  EXPECT_FALSE(report["log"]["problem"].get<std::string>().empty());
  const std::string dom = RenderedDom(html);
  EXPECT_THAT(dom, HasSubstr("Log DOES NOT VERIFY"));
  EXPECT_THAT(dom, HasSubstr("data-rendered=\"ok\""));
}

}  // namespace
}  // namespace kmsd::testing
