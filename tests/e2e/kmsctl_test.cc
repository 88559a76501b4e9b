// End-to-end: kmsctl against a real kmsd, with the spellings operators'
// scripts rely on (docs/CLI.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "protocol/base64.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

class KmsctlTest : public KmsdTest {
 protected:
  CommandResult Kmsctl(const std::vector<std::string>& args, const std::string& input = "") {
    return RunKmsctl(daemon_->socket_path(), args, input);
  }

  json KmsctlJson(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> with_json = {"--json"};
    with_json.insert(with_json.end(), args.begin(), args.end());
    CommandResult result = Kmsctl(with_json, input);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }

  static std::string Base64Decode(const std::string& text) {
    const std::optional<std::vector<uint8_t>> bytes = kmsd::Base64Decode(text);
    EXPECT_TRUE(bytes.has_value()) << text;
    return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
};

TEST_F(KmsctlTest, StatusReportsTokenAndCounts) {
  MustCall("tenant.create", "acme");
  json status = KmsctlJson({"status"});
  EXPECT_EQ(status["tenants"], 1);
  EXPECT_EQ(status["keys"], 3);
  EXPECT_EQ(status["token"]["label"], "kmsd-dev");
  EXPECT_EQ(status["token"]["available"], true);
  CommandResult plain = Kmsctl({"status"});
  EXPECT_EQ(plain.exit_code, 0);
  EXPECT_THAT(plain.out, HasSubstr("tenants: 1"));
}

TEST_F(KmsctlTest, StatusCountsRequestsByOperationAndCode) {
  MustCall("tenant.create", "acme");
  const Bytes ciphertext = Encrypt("acme", "alias/data", "x");
  ASSERT_TRUE(Decrypt("acme", ciphertext));
  Bytes tampered = ciphertext;
  tampered.back() ^= 1;
  EXPECT_EQ(Decrypt("acme", tampered).error().code(), Code::kInvalidCiphertext);
  EXPECT_EQ(Call("no.such-op").error().code(), Code::kUnknownOperation);

  json status = KmsctlJson({"status"});
  std::map<std::pair<std::string, std::string>, uint64_t> counts;
  for (const auto& row : status["requests"]) {
    uint64_t in_buckets = 0;
    for (const auto& bucket : row["latency_buckets"]) in_buckets += bucket.get<uint64_t>();
    EXPECT_EQ(in_buckets, row["count"].get<uint64_t>()) << row;
    counts[{row["op"], row["code"]}] = row["count"];
  }
  EXPECT_EQ((counts[{"encrypt", "OK"}]), 1u);
  EXPECT_EQ((counts[{"decrypt", "OK"}]), 1u);
  EXPECT_EQ((counts[{"decrypt", "INVALID_CIPHERTEXT"}]), 1u);
  EXPECT_EQ((counts[{"unknown", "UNKNOWN_OPERATION"}]), 1u);
  EXPECT_EQ((counts[{"tenant.create", "OK"}]), 1u);

  CommandResult table = Kmsctl({"status"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("P99 MS"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("decrypt +INVALID_CIPHERTEXT +1 "));
}

TEST_F(KmsctlTest, StatusShowsEveryTenantsRequestsToAdminsOnly) {
  MustCall("tenant.create", "acme");
  Encrypt("acme", "alias/data", "x");
  auto app = Principal("acme", "app", {"user"});
  ASSERT_TRUE(app);
  auto seen = CallOp<ops::ServiceStatus>(*app, "", {});
  ASSERT_TRUE(seen) << seen.error();
  EXPECT_EQ(seen->tenants, 1u);
  EXPECT_TRUE(seen->requests.empty());
  EXPECT_TRUE(seen->alerts.empty());
  EXPECT_EQ(seen->connections, 0u);
  auto admin = CallOp<ops::ServiceStatus>(*connection_, "", {});
  ASSERT_TRUE(admin);
  EXPECT_FALSE(admin->requests.empty());
  EXPECT_FALSE(admin->alerts.empty());
  EXPECT_GE(admin->connections, 2u);
}

// The text format as Prometheus itself reads it (python3-prometheus-client's
// parser), with the histogram's invariants checked on what it parsed.
TEST_F(KmsctlTest, StatusMetricsParseAsPrometheusText) {
  MustCall("tenant.create", "acme");
  for (int i = 0; i < 5; ++i) Encrypt("acme", "alias/data", "x");
  CommandResult metrics = Kmsctl({"status", "--metrics"});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  EXPECT_THAT(metrics.out, HasSubstr("kmsd_requests_total{op=\"encrypt\",code=\"OK\"} 5\n"));
  const std::string check = R"(
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
assert families["kmsd_tenants"].samples[0].value == 1, families["kmsd_tenants"]
assert families["kmsd_token_available"].samples[0].value == 1
assert families["kmsd_requests"].type == "counter"
hist = families["kmsd_request_duration_seconds"]
assert hist.type == "histogram"
encrypt = [s for s in hist.samples if s.labels.get("op") == "encrypt"]
buckets = [s for s in encrypt if s.name.endswith("_bucket")]
values = [s.value for s in buckets]
assert values == sorted(values), values
assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 5, buckets[-1]
count = [s for s in encrypt if s.name.endswith("_count")][0]
assert count.value == 5
total = [s for s in encrypt if s.name.endswith("_sum")][0]
assert 0 < total.value < 5, total
print("parsed", len(families))
)";
  CommandResult parsed = RunCommand({"/usr/bin/python3", "-c", check}, metrics.out);
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err << metrics.out;
  EXPECT_THAT(parsed.out, HasSubstr("parsed"));
}

TEST_F(KmsctlTest, TenantCreateDescribeList) {
  json created = KmsctlJson({"tenant", "create", "acme"});
  EXPECT_EQ(created["name"], "acme");
  EXPECT_EQ(created["keys"], 3);
  EXPECT_EQ(KmsctlJson({"tenant", "describe", "acme"})["aliases"], 3);
  json list = KmsctlJson({"tenant", "list"});
  ASSERT_EQ(list["tenants"].size(), 1u);
  EXPECT_EQ(list["tenants"][0]["name"], "acme");
}

TEST_F(KmsctlTest, EncryptThenDecryptThroughStdinAndStdout) {
  Kmsctl({"tenant", "create", "acme"});
  const std::string plaintext("binary\0payload\xff", 15);
  CommandResult encrypted = Kmsctl(
      {"encrypt", "--tenant", "acme", "--key", "alias/data", "--context", "app=x"}, plaintext);
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.err;
  EXPECT_EQ(encrypted.out.size(), plaintext.size() + 50);
  CommandResult decrypted =
      Kmsctl({"decrypt", "--tenant", "acme", "--context", "app=x"}, encrypted.out);
  ASSERT_EQ(decrypted.exit_code, 0) << decrypted.err;
  EXPECT_EQ(decrypted.out, plaintext);
}

TEST_F(KmsctlTest, EncryptThenDecryptThroughFiles) {
  Kmsctl({"tenant", "create", "acme"});
  const std::string in = dir_ / "plain.txt", enc = dir_ / "plain.enc", out = dir_ / "back.txt";
  std::ofstream(in) << "file contents";
  CommandResult encrypted =
      Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data", "--context", "app=x",
              "--context", "k=v", "--in", in, "--out", enc});
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.err;
  EXPECT_THAT(encrypted.out, HasSubstr("version: 1"));
  CommandResult decrypted = Kmsctl({"decrypt", "--tenant", "acme", "--context", "k=v", "--context",
                                    "app=x", "--in", enc, "--out", out});
  ASSERT_EQ(decrypted.exit_code, 0) << decrypted.err;
  EXPECT_EQ(ReadFile(out), "file contents");
}

TEST_F(KmsctlTest, FailedDecryptWritesNothing) {
  Kmsctl({"tenant", "create", "acme"});
  const std::string enc = dir_ / "c.enc", out = dir_ / "never.txt";
  ASSERT_EQ(Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data", "--context", "app=x",
                    "--out", enc},
                   "secret")
                .exit_code,
            0);
  CommandResult wrong_context =
      Kmsctl({"decrypt", "--tenant", "acme", "--context", "app=y", "--in", enc, "--out", out});
  EXPECT_EQ(wrong_context.exit_code, ExitCodeFor(Code::kInvalidCiphertext));
  EXPECT_THAT(wrong_context.err, HasSubstr("INVALID_CIPHERTEXT"));
  EXPECT_FALSE(std::filesystem::exists(out));
  CommandResult to_stdout = Kmsctl({"decrypt", "--tenant", "acme", "--in", enc});
  EXPECT_EQ(to_stdout.exit_code, ExitCodeFor(Code::kInvalidCiphertext));
  EXPECT_EQ(to_stdout.out, "");
  // An existing output file is left as it was.
  std::ofstream(out) << "keep me";
  Kmsctl({"decrypt", "--tenant", "acme", "--in", enc, "--out", out});
  EXPECT_EQ(ReadFile(out), "keep me");
}

TEST_F(KmsctlTest, DataKeyDecryptsToItsPlaintext) {
  Kmsctl({"tenant", "create", "acme"});
  json data_key =
      KmsctlJson({"data-key", "--tenant", "acme", "--key", "alias/data", "--context", "f=1"});
  const std::string plaintext = Base64Decode(data_key["plaintext"]);
  EXPECT_EQ(plaintext.size(), 32u);
  const std::string ciphertext = Base64Decode(data_key["ciphertext"]);
  CommandResult decrypted = Kmsctl({"decrypt", "--tenant", "acme", "--context", "f=1"}, ciphertext);
  ASSERT_EQ(decrypted.exit_code, 0) << decrypted.err;
  EXPECT_EQ(decrypted.out, plaintext);

  json without =
      KmsctlJson({"data-key", "--tenant", "acme", "--key", "alias/data", "--no-plaintext"});
  EXPECT_FALSE(without.contains("plaintext"));
  EXPECT_EQ(Base64Decode(without["ciphertext"]).size(), 32u + 50u);
  json small =
      KmsctlJson({"data-key", "--tenant", "acme", "--key", "alias/data", "--key-spec", "AES_128"});
  EXPECT_EQ(Base64Decode(small["plaintext"]).size(), 16u);
}

TEST_F(KmsctlTest, KeyRotateByAliasThenReEncryptMovesToNewVersion) {
  Kmsctl({"tenant", "create", "acme"});
  CommandResult encrypted =
      Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data"}, "move me");
  ASSERT_EQ(encrypted.exit_code, 0);
  json rotated = KmsctlJson({"key", "rotate", "--tenant", "acme", "alias/data"});
  EXPECT_EQ(rotated["latest_version"], 2);
  json versions = KmsctlJson({"key", "versions", "--tenant", "acme", "alias/data"});
  EXPECT_EQ(versions["versions"].size(), 2u);
  CommandResult moved = Kmsctl({"re-encrypt", "--tenant", "acme"}, encrypted.out);
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  Value::Map args;
  args.emplace_back("ciphertext", Bytes(moved.out.begin(), moved.out.end()));
  Reply reply = MustCall("decrypt", "acme", std::move(args));
  EXPECT_EQ(reply.result().Uint("version").value(), 2u);
  EXPECT_EQ(ToString(reply.result().Binary("plaintext").value()), "move me");
}

TEST_F(KmsctlTest, KeysAndAliasesLifecycle) {
  Kmsctl({"tenant", "create", "acme"});
  json key =
      KmsctlJson({"key", "create", "--tenant", "acme", "billing", "--description", "invoices"});
  EXPECT_EQ(key["name"], "billing");
  EXPECT_EQ(key["description"], "invoices");
  EXPECT_EQ(KmsctlJson({"key", "list", "--tenant", "acme"})["keys"].size(), 4u);
  EXPECT_EQ(KmsctlJson({"alias", "create", "--tenant", "acme", "alias/bill", "billing"})["key"],
            "billing");
  EXPECT_EQ(KmsctlJson({"alias", "update", "--tenant", "acme", "alias/bill", "secrets-key"})["key"],
            "secrets-key");
  EXPECT_EQ(KmsctlJson({"key", "describe", "--tenant", "acme", "alias/bill"})["name"],
            "secrets-key");
  EXPECT_EQ(Kmsctl({"alias", "delete", "--tenant", "acme", "alias/bill"}).exit_code, 0);
  EXPECT_EQ(KmsctlJson({"alias", "list", "--tenant", "acme"})["aliases"].size(), 3u);
  CommandResult gone = Kmsctl({"key", "describe", "--tenant", "acme", "alias/bill"});
  EXPECT_EQ(gone.exit_code, ExitCodeFor(Code::kNotFound));
}

TEST_F(KmsctlTest, BatchAndRandom) {
  Kmsctl({"tenant", "create", "acme"});
  const std::string a = dir_ / "a.txt", b = dir_ / "b.txt";
  std::ofstream(a) << "alpha";
  std::ofstream(b) << "beta";
  CommandResult encrypted =
      Kmsctl({"batch", "encrypt", "--tenant", "acme", "--key", "alias/data", a, b});
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.err;
  std::filesystem::remove(a);
  std::filesystem::remove(b);
  CommandResult decrypted =
      Kmsctl({"batch", "decrypt", "--tenant", "acme", a + ".enc", b + ".enc"});
  ASSERT_EQ(decrypted.exit_code, 0) << decrypted.err;
  EXPECT_EQ(ReadFile(a), "alpha");
  EXPECT_EQ(ReadFile(b), "beta");
  json random = KmsctlJson({"random", "--bytes", "24"});
  EXPECT_EQ(Base64Decode(random["random"]).size(), 24u);
}

TEST_F(KmsctlTest, ErrorsCarryTheirClass) {
  MustCall("tenant.create", "acme");
  json missing = json::parse(Kmsctl({"--json", "tenant", "describe", "nope"}).out);
  EXPECT_EQ(missing["error"]["class"], "caller");
  EXPECT_FALSE(missing["error"].contains("retry_after_ms"));
  ASSERT_EQ(Kmsctl({"key", "disable", "--tenant", "acme", "alias/data"}).exit_code, 0);
  CommandResult disabled =
      Kmsctl({"--json", "encrypt", "--tenant", "acme", "--key", "alias/data"}, "x");
  EXPECT_EQ(disabled.exit_code, ExitCodeFor(Code::kKeyDisabled));
  json state = json::parse(disabled.out);
  EXPECT_EQ(state["error"]["code"], "KEY_DISABLED");
  EXPECT_EQ(state["error"]["class"], "state");
  // A usage error is kmsctl's own: no protocol class.
  json usage = json::parse(Kmsctl({"--json", "tenant", "frobnicate"}).out);
  EXPECT_EQ(usage["error"]["code"], "USAGE");
  EXPECT_FALSE(usage["error"].contains("class"));
}

TEST_F(KmsctlTest, ErrorsHaveDocumentedExitCodesAndJsonShape) {
  CommandResult missing = Kmsctl({"tenant", "describe", "nope"});
  EXPECT_EQ(missing.exit_code, ExitCodeFor(Code::kNotFound));
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
  CommandResult as_json = Kmsctl({"--json", "tenant", "describe", "nope"});
  EXPECT_EQ(as_json.exit_code, ExitCodeFor(Code::kNotFound));
  json error = json::parse(as_json.out);
  EXPECT_EQ(error["error"]["code"], "NOT_FOUND");
  CommandResult bad_name = Kmsctl({"tenant", "create", "Bad_Name"});
  EXPECT_EQ(bad_name.exit_code, ExitCodeFor(Code::kInvalidArgument));
  EXPECT_EQ(
      Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data", "--context", "novalue"}, "x")
          .exit_code,
      2);
  EXPECT_EQ(Kmsctl({"no-such-group"}).exit_code, 2);
  CommandResult unreachable = RunKmsctl(dir_ / "absent.sock", {"status"});
  EXPECT_EQ(unreachable.exit_code, ExitCodeFor(Code::kUnavailable));
}

TEST_F(KmsctlTest, SocketComesFromEnvironmentWhenNoFlag) {
  CommandResult result = RunCommand({KMSCTL_BINARY, "--json", "status"}, "",
                                    {{"KMSD_SOCKET", daemon_->socket_path()}});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(result.out)["protocol"], 1);
  CommandResult flag_wins =
      RunCommand({KMSCTL_BINARY, "--socket", daemon_->socket_path(), "status"}, "",
                 {{"KMSD_SOCKET", dir_ / "absent.sock"}});
  EXPECT_EQ(flag_wins.exit_code, 0) << flag_wins.err;
}

}  // namespace
}  // namespace kmsd::testing
