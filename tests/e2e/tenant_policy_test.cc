// End-to-end: tenant policies and quotas through the real socket (issue 10).
// The seeds' documents load as they are and come back byte for byte, with
// notes for what kmsd does not simply enforce; a bad document changes
// nothing; the policy's rates, requests in flight, allowed peers and time
// windows hold for the tenant's principals (not for admins, nor for another
// tenant); max_keys and max_data_keys_per_day hold for everyone;
// key_rotation_days sets every key's next rotation; the storage quotas are
// served by tenant.describe; policies survive a restart. The test's uid is
// the dev daemon's admin; a connection with an API key acts as that key's
// principal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "protocol/policy_types.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecurityPolicy[] = R"(# Tenant Security Policy Template
security_policies:
  tenant_id: "acme"
  version: "1.0.0"
  data_protection:
    encryption_level: "AES-256"
    key_rotation_days: 90
    data_locality: ["us-east-1", "us-west-2"]
    cross_region_encryption: true
  access_control:
    max_concurrent_sessions: 100
    session_timeout_minutes: 480
    ip_whitelist: ["10.0.0.0/8", "172.16.0.0/12"]
    mfa_required: false
  audit_logging:
    log_all_operations: true
    log_data_access: true
    log_admin_actions: true
    retention_days: 2555  # 7 years for compliance
  compliance:
    frameworks: ["SOX", "GDPR", "ISO27001"]
    data_classification: "confidential"
    pii_handling: "encrypt_and_redact"
  rate_limiting:
    requests_per_minute: 1000
    requests_per_hour: 50000
    burst_size: 100
    cost_threshold: 5000
)";

constexpr char kResourceQuotas[] = R"(resource_quotas:
  tenant_id: "acme"
  compute:
    max_concurrent_requests: 100
    max_request_duration: 300000  # 5 minutes
    max_memory_usage: "2GB"
  storage:
    max_data_size: "100GB"
    max_file_count: 10000
    max_file_size: "1GB"
  api:
    requests_per_minute: 1000
    requests_per_hour: 50000
    requests_per_day: 1000000
  cost:
    monthly_budget: 5000
    daily_limit: 200
    cost_alert_threshold: 0.8  # 80% of budget
  domains:
    manufacturing: true
    finance: false
    pharma: false
)";

std::string SecretText(const SecretBuffer& secret) {
  return std::string(reinterpret_cast<const char*>(secret.RevealData()), secret.size());
}

template <typename T>
Code CodeOf(const Result<T>& result) {
  return result ? Code::kOk : result.error().code();
}

class TenantPolicyTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    for (const char* tenant : {"acme", "globex"}) {
      MustCall("tenant.create", tenant);
      ASSERT_TRUE(
          CallOp<ops::KeyCreate>(*connection_, tenant, {.name = "orders", .description = {}}));
    }
  }

  Result<ops::PolicyDescription> Put(const std::string& document,
                                     const std::string& tenant = "acme", Connection* as = nullptr) {
    return CallOp<ops::TenantPutPolicy>(as ? *as : *connection_, tenant, {.document = document});
  }
  Result<ops::PolicyDescription> Get(const std::string& tenant = "acme", Connection* as = nullptr) {
    return CallOp<ops::TenantGetPolicy>(as ? *as : *connection_, tenant, {});
  }

  // A principal of `tenant` holding `roles`, and a connection using its key.
  std::unique_ptr<Connection> Principal(const std::string& tenant, const std::string& name,
                                        std::vector<std::string> roles) {
    auto created = CallOp<ops::PrincipalCreate>(
        *connection_, tenant,
        {.name = name, .roles = std::move(roles), .uids = std::nullopt, .gids = std::nullopt});
    EXPECT_TRUE(created) << created.error();
    auto key = CallOp<ops::ApiKeyCreate>(*connection_, tenant,
                                         {.principal = name, .expires_in_seconds = std::nullopt});
    EXPECT_TRUE(key) << key.error();
    auto dialed =
        Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(10000),
                         kDefaultMaxRequestBytes, SecretBuffer::CopyOf(SecretText(key->secret)));
    EXPECT_TRUE(dialed) << dialed.error();
    return std::move(*dialed);
  }

  static Result<ops::EncryptReply> EncryptAs(Connection& as, const std::string& tenant = "acme") {
    static constexpr uint8_t kPlaintext[] = {'p', 'o', 'l', 'i', 'c', 'y'};
    return CallOp<ops::Encrypt>(as, tenant,
                                {.key = "orders", .plaintext = kPlaintext, .context = {}});
  }

  static Result<ops::DataKeyReply> DataKeyAs(Connection& as, const std::string& tenant = "acme") {
    return CallOp<ops::GenerateDataKey>(as, tenant,
                                        {.key = "orders",
                                         .context = {},
                                         .key_spec = std::nullopt,
                                         .number_of_bytes = std::nullopt});
  }

  void Restart() {
    connection_.reset();
    ASSERT_EQ(daemon_->Stop(), 0);
    daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
    connection_ = daemon_->Connect();
  }
};

bool HasNote(const ops::PolicyDescription& policy, const std::string& field,
             const std::string& kind) {
  for (const auto& note : policy.notes) {
    if (note.field == field && note.kind == kind && !note.note.empty()) return true;
  }
  return false;
}

TEST_F(TenantPolicyTest, SeedDocumentsLoadAsTheyAreAndComeBackByteForByte) {
  auto empty = Get();
  ASSERT_TRUE(empty) << empty.error();
  EXPECT_FALSE(empty->document.has_value());

  const std::string document =
      std::string(kSecurityPolicy) + kResourceQuotas + "  hsm_vendor: \"acme-hsm\"\n";
  auto put = Put(document);
  ASSERT_TRUE(put) << put.error();
  EXPECT_EQ(put->document, document);
  EXPECT_TRUE(HasNote(*put, "security_policies.data_protection.data_locality", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "security_policies.access_control.ip_whitelist", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.cost", "not_applicable") ||
              HasNote(*put, "resource_quotas.cost.monthly_budget", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.hsm_vendor", "unknown"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.storage.max_data_size", "served_elsewhere"));

  auto got = Get();
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->document, document);
  EXPECT_EQ(got->notes.size(), put->notes.size());
  ASSERT_TRUE(got->updated_at.has_value());

  // The storage quotas, for the client library.
  auto described = CallOp<ops::TenantDescribe>(*connection_, "acme", {});
  ASSERT_TRUE(described) << described.error();
  EXPECT_EQ(described->max_data_size, uint64_t{100} * 1000 * 1000 * 1000);
  EXPECT_EQ(described->max_file_count, 10000u);
  EXPECT_EQ(described->max_file_size, uint64_t{1000} * 1000 * 1000);
  auto other = CallOp<ops::TenantDescribe>(*connection_, "globex", {});
  ASSERT_TRUE(other) << other.error();
  EXPECT_FALSE(other->max_data_size.has_value());

  // key_rotation_days: the key without a period of its own rotates anyway.
  auto key = CallOp<ops::KeyDescribe>(*connection_, "acme", {.key = "orders"});
  ASSERT_TRUE(key) << key.error();
  ASSERT_TRUE(key->next_rotation_at.has_value());
  EXPECT_FALSE(key->rotation_period_seconds.has_value());
  auto versions = CallOp<ops::KeyListVersions>(*connection_, "acme", {.key = "orders"});
  ASSERT_TRUE(versions) << versions.error();
  EXPECT_EQ(*key->next_rotation_at, versions->versions.back().created_at + 90 * 86400);
  auto unruled = CallOp<ops::KeyDescribe>(*connection_, "globex", {.key = "orders"});
  ASSERT_TRUE(unruled) << unruled.error();
  EXPECT_FALSE(unruled->next_rotation_at.has_value());

  // All of it survives a restart.
  Restart();
  auto after = Get();
  ASSERT_TRUE(after) << after.error();
  EXPECT_EQ(after->document, document);
  key = CallOp<ops::KeyDescribe>(*connection_, "acme", {.key = "orders"});
  ASSERT_TRUE(key) << key.error();
  EXPECT_EQ(key->next_rotation_at, versions->versions.back().created_at + 90 * 86400);
}

TEST_F(TenantPolicyTest, ABadDocumentIsRefusedNamingTheFieldAndTheOldOneStays) {
  const std::string good = "resource_quotas:\n  keys:\n    max_keys: 5\n";
  ASSERT_TRUE(Put(good));
  struct Case {
    std::string document;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"security_policies:\n  rate_limiting:\n    burst_size: \"lots\"\n",
       "security_policies.rate_limiting.burst_size"},
      {"security_policies:\n  data_protection:\n    key_rotation_days: 0\n",
       "security_policies.data_protection.key_rotation_days"},
      {"security_policies:\n  tenant_id: globex\n", "security_policies.tenant_id"},
      {"security_policies:\n  data_protection:\n    encryption_level: AES-128\n",
       "encryption_level"},
      {"security_policies: [unclosed\n", "line"},
      {"just text", "security_policies"},
      {"", "empty"},
      {"other_section:\n  a: 1\n", "other_section"},
      {"security_policies:\n  access_control:\n    ip_whitelist: [\"10.0.0.0/33\"]\n",
       "ip_whitelist"},
      {"security_policies:\n  access_control:\n    time_windows:\n      - days: [someday]\n"
       "        from: \"08:00\"\n        until: \"18:00\"\n",
       "time_windows"},
      {std::string(70 * 1024, '#'), "bytes"},
  };
  for (const Case& bad : cases) {
    auto refused = Put(bad.document);
    ASSERT_FALSE(refused) << bad.document;
    EXPECT_EQ(refused.error().code(), Code::kInvalidArgument) << bad.document;
    EXPECT_THAT(refused.error().message(), HasSubstr(bad.names)) << bad.document;
  }
  auto kept = Get();
  ASSERT_TRUE(kept) << kept.error();
  EXPECT_EQ(kept->document, good);
  // Not for a tenant that does not exist, nor without the document field.
  EXPECT_EQ(CodeOf(Put(good, "initech")), Code::kNotFound);
  EXPECT_EQ(CodeOf(Get("initech")), Code::kNotFound);
  EXPECT_EQ(Call("tenant.put-policy", "acme").error().code(), Code::kInvalidArgument);
}

TEST_F(TenantPolicyTest, RolesDecideWhoReadsAndWhoPutsAPolicy) {
  auto manager = Principal("acme", "ops", {"manager"});
  auto viewer = Principal("acme", "auditor", {"viewer"});
  auto user = Principal("acme", "app", {"user"});
  const std::string document = "resource_quotas:\n  keys:\n    max_keys: 50\n";
  ASSERT_TRUE(Put(document, "acme", manager.get()));
  auto seen = Get("acme", viewer.get());
  ASSERT_TRUE(seen) << seen.error();
  EXPECT_EQ(seen->document, document);
  auto viewer_put = Put(document, "acme", viewer.get());
  ASSERT_FALSE(viewer_put);
  EXPECT_EQ(viewer_put.error().code(), Code::kAccessDenied);
  EXPECT_THAT(viewer_put.error().message(), HasSubstr("policy:manage"));
  EXPECT_EQ(CodeOf(Get("acme", user.get())), Code::kAccessDenied);
  // Nothing of another tenant.
  EXPECT_EQ(CodeOf(Get("globex", manager.get())), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(Put(document, "globex", manager.get())), Code::kAccessDenied);
}

TEST_F(TenantPolicyTest, RateLimitsThrottleTheTenantsPrincipalsOnly) {
  auto app = Principal("acme", "app", {"user"});
  auto other = Principal("globex", "app", {"user"});
  ASSERT_TRUE(
      Put("security_policies:\n  rate_limiting:\n    requests_per_minute: 60\n"
          "    burst_size: 3\n"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(EncryptAs(*app)) << i;
  auto throttled = EncryptAs(*app);
  ASSERT_FALSE(throttled);
  EXPECT_EQ(throttled.error().code(), Code::kThrottled);
  EXPECT_THAT(throttled.error().message(), HasSubstr("requests_per_minute"));
  ASSERT_TRUE(throttled.error().retry_after_ms().has_value());
  EXPECT_GE(*throttled.error().retry_after_ms(), 1u);
  EXPECT_LE(*throttled.error().retry_after_ms(), 1000u);
  // The admin and another tenant's principal go on.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(EncryptAs(*connection_)) << i;
    EXPECT_TRUE(EncryptAs(*other, "globex")) << i;
  }
  // After the retry-after, one more is admitted (60 a minute: one a second).
  std::this_thread::sleep_for(std::chrono::milliseconds(*throttled.error().retry_after_ms() + 50));
  EXPECT_TRUE(EncryptAs(*app));
  EXPECT_EQ(CodeOf(EncryptAs(*app)), Code::kThrottled);
  // A daily cap refuses until the next UTC day. Today's count goes on from
  // the requests admitted under the previous document (four so far).
  ASSERT_TRUE(Put("resource_quotas:\n  api:\n    requests_per_day: 5\n"));
  ASSERT_TRUE(EncryptAs(*app));
  auto capped = EncryptAs(*app);
  ASSERT_FALSE(capped);
  EXPECT_EQ(capped.error().code(), Code::kThrottled);
  EXPECT_THAT(capped.error().message(), HasSubstr("requests_per_day"));
  EXPECT_GT(capped.error().retry_after_ms().value_or(0), 0u);
}

TEST_F(TenantPolicyTest, MaxConcurrentRequestsThrottlesWhatIsOverIt) {
  auto app = Principal("acme", "app", {"user"});
  ASSERT_TRUE(Put("resource_quotas:\n  compute:\n    max_concurrent_requests: 1\n"));
  // Four connections of the principal, each sending large batches at once.
  std::vector<std::unique_ptr<Connection>> connections;
  for (int i = 0; i < 4; ++i) {
    auto secret_key = CallOp<ops::ApiKeyCreate>(
        *connection_, "acme", {.principal = "app", .expires_in_seconds = std::nullopt});
    ASSERT_TRUE(secret_key) << secret_key.error();
    auto dialed = Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(10000),
                                   kDefaultMaxRequestBytes,
                                   SecretBuffer::CopyOf(SecretText(secret_key->secret)));
    ASSERT_TRUE(dialed) << dialed.error();
    connections.push_back(std::move(*dialed));
  }
  std::atomic<int> ok{0}, throttled{0}, other{0};
  std::vector<std::thread> threads;
  for (auto& connection : connections) {
    threads.emplace_back([&, c = connection.get()] {
      static constexpr uint8_t kPlaintext[] = {'x'};
      for (int round = 0; round < 40; ++round) {
        ops::BatchEncryptRequest batch;
        batch.key = "orders";
        for (int i = 0; i < 200; ++i) {
          batch.items.items.push_back({.plaintext = kPlaintext, .context = {}});
        }
        auto reply = CallOp<ops::BatchEncrypt>(*c, "acme", std::move(batch));
        if (reply) {
          ++ok;
        } else if (reply.error().code() == Code::kThrottled &&
                   reply.error().message().find("max_concurrent_requests") != std::string::npos &&
                   reply.error().retry_after_ms().has_value()) {
          ++throttled;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(throttled.load(), 0);
  EXPECT_EQ(ok.load() + throttled.load(), 160);
}

TEST_F(TenantPolicyTest, AllowedPeersAndTimeWindowsBindThePrincipalsNotTheAdmin) {
  auto app = Principal("acme", "app", {"user"});
  const uint64_t me = getuid();
  ASSERT_TRUE(Put("security_policies:\n  access_control:\n    allowed_peers:\n      uids: [" +
                  std::to_string(me + 4242) + "]\n"));
  auto refused = EncryptAs(*app);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
  EXPECT_THAT(refused.error().message(), HasSubstr("allowed_peers"));
  EXPECT_TRUE(EncryptAs(*connection_));
  ASSERT_TRUE(Put("security_policies:\n  access_control:\n    allowed_peers:\n      uids: [" +
                  std::to_string(me) + "]\n"));
  EXPECT_TRUE(EncryptAs(*app));

  // A window twelve hours away from now, every day: never now.
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  const int away = (utc.tm_hour + 12) % 24;
  char window[128];
  std::snprintf(window, sizeof window,
                "      - days: daily\n        from: \"%02d:00\"\n        until: \"%02d:00\"\n",
                away, (away + 1) % 24 == 0 ? 24 : away + 1);
  ASSERT_TRUE(
      Put(std::string("security_policies:\n  access_control:\n    time_windows:\n") + window));
  auto outside = EncryptAs(*app);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code(), Code::kAccessDenied);
  EXPECT_THAT(outside.error().message(), HasSubstr("time_windows"));
  EXPECT_TRUE(EncryptAs(*connection_));
  // The whole day in a window: admitted.
  ASSERT_TRUE(
      Put("security_policies:\n  access_control:\n    time_windows:\n"
          "      - days: daily\n        from: \"00:00\"\n        until: \"24:00\"\n"));
  EXPECT_TRUE(EncryptAs(*app));
}

TEST_F(TenantPolicyTest, KeyAndDataKeyQuotasHoldForEveryone) {
  // acme holds its provisioned keys and "orders": room for one more.
  auto listed = CallOp<ops::KeyList>(*connection_, "acme", {});
  ASSERT_TRUE(listed) << listed.error();
  const size_t held = listed->keys.size();
  ASSERT_TRUE(Put("resource_quotas:\n  keys:\n    max_keys: " + std::to_string(held + 1) +
                  "\n    max_data_keys_per_day: 2\n"));
  ASSERT_TRUE(
      CallOp<ops::KeyCreate>(*connection_, "acme", {.name = "one-more", .description = {}}));
  auto over = CallOp<ops::KeyCreate>(*connection_, "acme", {.name = "too-many", .description = {}});
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(over.error().message(), HasSubstr("max_keys"));
  EXPECT_TRUE(CallOp<ops::KeyCreate>(*connection_, "globex", {.name = "fine", .description = {}}));

  auto app = Principal("acme", "app", {"user"});
  ASSERT_TRUE(DataKeyAs(*app));
  ASSERT_TRUE(DataKeyAs(*connection_));
  auto spent = DataKeyAs(*app);
  ASSERT_FALSE(spent);
  EXPECT_EQ(spent.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(spent.error().message(), HasSubstr("max_data_keys_per_day"));
  EXPECT_GT(spent.error().retry_after_ms().value_or(0), 0u);
  EXPECT_EQ(CodeOf(DataKeyAs(*connection_)), Code::kQuotaExceeded);
  EXPECT_TRUE(DataKeyAs(*connection_, "globex"));
  EXPECT_TRUE(EncryptAs(*app));  // other operations are not data keys
}

// One tenant's flood does not starve another: A floods far past its limit
// from several connections while B runs steadily under its own; every one
// of B's requests succeeds.
TEST_F(TenantPolicyTest, ATenantsFloodDoesNotStarveAnother) {
  ASSERT_TRUE(
      Put("security_policies:\n  rate_limiting:\n    requests_per_minute: 600\n"
          "    burst_size: 20\n",
          "acme"));
  ASSERT_TRUE(
      Put("security_policies:\n  rate_limiting:\n    requests_per_minute: 6000\n"
          "    burst_size: 50\n",
          "globex"));
  std::vector<std::unique_ptr<Connection>> flooders;
  for (int i = 0; i < 4; ++i)
    flooders.push_back(Principal("acme", "flood" + std::to_string(i), {"user"}));
  auto steady = Principal("globex", "steady", {"user"});
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> flood_ok{0}, flood_throttled{0};
  std::vector<std::thread> threads;
  for (auto& flooder : flooders) {
    threads.emplace_back([&, c = flooder.get()] {
      while (!stop.load()) {
        auto reply = EncryptAs(*c);
        if (reply) {
          ++flood_ok;
        } else if (reply.error().code() == Code::kThrottled) {
          ++flood_throttled;
        }
      }
    });
  }
  // B: 20 a second for 3 seconds, under its 100 a second.
  int b_ok = 0;
  std::vector<std::string> b_failures;
  for (int i = 0; i < 60; ++i) {
    auto reply = EncryptAs(*steady, "globex");
    if (reply) {
      ++b_ok;
    } else {
      b_failures.push_back(reply.error().ToString());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(b_ok, 60) << (b_failures.empty() ? "" : b_failures.front());
  EXPECT_GT(flood_throttled.load(), 100 * flood_ok.load() / 100);  // mostly refused
  // A got its burst and its rate (10 a second over ~3 s), not more.
  EXPECT_LE(flood_ok.load(), 20u + 10u * 5u);
}

// kmsctl tenant policy put|get, and the exit codes of THROTTLED (12) and
// QUOTA_EXCEEDED (8) (docs/CLI.md).
TEST_F(TenantPolicyTest, KmsctlPutsAndGetsPoliciesAndExitsWithTheirCodes) {
  const std::string path = dir_ / "policy.yaml";
  const std::string document =
      std::string(kSecurityPolicy) + "resource_quotas:\n  keys:\n    max_data_keys_per_day: 1\n";
  std::ofstream(path) << document;
  CommandResult put = RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", "acme", path});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_THAT(put.out, HasSubstr("# security_policies.data_protection.data_locality: "
                                 "not_applicable: "));
  CommandResult got = RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "get", "acme"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out.substr(0, document.size()), document);
  EXPECT_EQ(got.out.substr(document.size()), put.out);
  // What get printed goes back in as it is.
  const std::string again = dir_ / "again.yaml";
  std::ofstream(again) << got.out;
  EXPECT_EQ(RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", "acme", again}).exit_code,
            0);
  CommandResult json_get =
      RunKmsctl(daemon_->socket_path(), {"--json", "tenant", "policy", "get", "globex"});
  ASSERT_EQ(json_get.exit_code, 0) << json_get.err;
  EXPECT_THAT(json_get.out, HasSubstr("\"tenant\":\"globex\""));
  EXPECT_THAT(json_get.out, Not(HasSubstr("\"document\"")));

  const std::string bad = dir_ / "bad.yaml";
  std::ofstream(bad) << "security_policies:\n  rate_limiting:\n    requests_per_minute: -5\n";
  CommandResult refused =
      RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", "acme", bad});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("security_policies.rate_limiting.requests_per_minute"));
  EXPECT_EQ(RunKmsctl(daemon_->socket_path(),
                      {"tenant", "policy", "put", "acme", dir_ / "missing.yaml"})
                .exit_code,
            2);

  // QUOTA_EXCEEDED: exit 8; THROTTLED: exit 12, with the time to wait.
  auto data_key = [&](const std::map<std::string, std::string>& env) {
    return RunCommand({KMSCTL_BINARY, "--socket", daemon_->socket_path(), "data-key", "--tenant",
                       "acme", "--key", "orders", "--no-plaintext"},
                      "", env);
  };
  EXPECT_EQ(data_key({}).exit_code, 0);
  CommandResult spent = data_key({});
  EXPECT_EQ(spent.exit_code, 8) << spent.err;
  EXPECT_THAT(spent.err, HasSubstr("QUOTA_EXCEEDED"));

  auto key = CallOp<ops::PrincipalCreate>(
      *connection_, "acme", {.name = "app", .roles = {"user"}, .uids = {}, .gids = {}});
  ASSERT_TRUE(key) << key.error();
  auto secret = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                          {.principal = "app", .expires_in_seconds = {}});
  ASSERT_TRUE(secret) << secret.error();
  ASSERT_TRUE(Put("security_policies:\n  rate_limiting:\n    requests_per_minute: 1\n"));
  auto encrypt = [&] {
    return RunCommand({KMSCTL_BINARY, "--socket", daemon_->socket_path(), "encrypt", "--tenant",
                       "acme", "--key", "orders"},
                      "plaintext", {{"KMSD_API_KEY", SecretText(secret->secret)}});
  };
  EXPECT_EQ(encrypt().exit_code, 0);
  CommandResult throttled = encrypt();
  EXPECT_EQ(throttled.exit_code, 12) << throttled.err;
  EXPECT_THAT(throttled.err, HasSubstr("THROTTLED"));
  EXPECT_THAT(throttled.err, HasSubstr("retry after"));
}

}  // namespace
}  // namespace kmsd::testing
