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
#include "tests/support/seed_policies.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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
  // The seeds name their tenant: acme-manufacturing.
  const std::string seeded = "acme-manufacturing";
  MustCall("tenant.create", seeded);
  ASSERT_TRUE(CallOp<ops::KeyCreate>(*connection_, seeded, {.name = "orders", .description = {}}));
  auto empty = Get(seeded);
  ASSERT_TRUE(empty) << empty.error();
  EXPECT_FALSE(empty->document.has_value());

  const std::string document =
      std::string(kSecuritySeed) + std::string(kQuotaSeed) + "  hsm_vendor: \"acme-hsm\"\n";
  auto put = Put(document, seeded);
  ASSERT_TRUE(put) << put.error();
  EXPECT_EQ(put->document, document);
  EXPECT_TRUE(HasNote(*put, "security_policies.data_protection.data_locality", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "security_policies.access_control.ip_whitelist", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.cost", "not_applicable") ||
              HasNote(*put, "resource_quotas.cost.monthly_budget", "not_applicable"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.hsm_vendor", "unknown"));
  EXPECT_TRUE(HasNote(*put, "resource_quotas.storage.max_data_size", "served_elsewhere"));

  auto got = Get(seeded);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->document, document);
  EXPECT_EQ(got->notes.size(), put->notes.size());
  ASSERT_TRUE(got->updated_at.has_value());

  // The storage quotas, for the client library.
  auto described = CallOp<ops::TenantDescribe>(*connection_, seeded, {});
  ASSERT_TRUE(described) << described.error();
  EXPECT_EQ(described->max_data_size, uint64_t{100} * 1000 * 1000 * 1000);
  EXPECT_EQ(described->max_file_count, 10000u);
  EXPECT_EQ(described->max_file_size, uint64_t{1000} * 1000 * 1000);
  auto other = CallOp<ops::TenantDescribe>(*connection_, "globex", {});
  ASSERT_TRUE(other) << other.error();
  EXPECT_FALSE(other->max_data_size.has_value());

  // key_rotation_days: the key without a period of its own rotates anyway.
  auto key = CallOp<ops::KeyDescribe>(*connection_, seeded, {.key = "orders"});
  ASSERT_TRUE(key) << key.error();
  ASSERT_TRUE(key->next_rotation_at.has_value());
  EXPECT_FALSE(key->rotation_period_seconds.has_value());
  auto versions = CallOp<ops::KeyListVersions>(*connection_, seeded, {.key = "orders"});
  ASSERT_TRUE(versions) << versions.error();
  EXPECT_EQ(*key->next_rotation_at, versions->versions.back().created_at + 90 * 86400);
  auto unruled = CallOp<ops::KeyDescribe>(*connection_, "globex", {.key = "orders"});
  ASSERT_TRUE(unruled) << unruled.error();
  EXPECT_FALSE(unruled->next_rotation_at.has_value());

  // All of it survives a restart.
  Restart();
  auto after = Get(seeded);
  ASSERT_TRUE(after) << after.error();
  EXPECT_EQ(after->document, document);
  key = CallOp<ops::KeyDescribe>(*connection_, seeded, {.key = "orders"});
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

// A manager may put its tenant's policy, but only tighten what is in force:
// the operator's limits hold (an admin may loosen them).
TEST_F(TenantPolicyTest, RolesDecideWhoReadsAndWhoPutsAPolicy) {
  auto manager = Principal("acme", "ops", {"manager"});
  auto viewer = Principal("acme", "auditor", {"viewer"});
  auto user = Principal("acme", "app", {"user"});
  const std::string document = "resource_quotas:\n  keys:\n    max_keys: 50\n";
  ASSERT_TRUE(Put(document, "acme", manager.get()));  // none in force: anything is tighter
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

  // Tighter, and a new limit: allowed. Looser or removed: refused, nothing changes.
  const std::string tighter =
      "resource_quotas:\n  keys:\n    max_keys: 40\n  compute:\n    max_concurrent_requests: 8\n";
  ASSERT_TRUE(Put(tighter, "acme", manager.get()));
  for (const auto& [looser, field] : std::vector<std::pair<std::string, std::string>>{
           {"resource_quotas:\n  keys:\n    max_keys: 41\n  compute:\n"
            "    max_concurrent_requests: 8\n",
            "resource_quotas.keys.max_keys"},
           {"resource_quotas:\n  keys:\n    max_keys: 40\n",
            "resource_quotas.compute.max_concurrent_requests"}}) {
    auto refused = Put(looser, "acme", manager.get());
    ASSERT_FALSE(refused) << looser;
    EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
    EXPECT_THAT(refused.error().message(), HasSubstr(field));
    EXPECT_THAT(refused.error().message(), HasSubstr("only tighten"));
  }
  EXPECT_EQ(Get()->document, tighter);
  // The admin may loosen it.
  EXPECT_TRUE(Put(document));
}

// Seconds until the next 00:00 UTC: tests of daily counts skip their daily
// part when the day could end under them.
int64_t SecondsToUtcMidnight() { return 86400 - std::time(nullptr) % 86400; }

TEST_F(TenantPolicyTest, RateLimitsThrottleTheTenantsPrincipalsOnly) {
  auto app = Principal("acme", "app", {"user"});
  auto other = Principal("globex", "app", {"user"});
  // One request every 3 s, 3 at once: wide margins for a loaded machine.
  ASSERT_TRUE(
      Put("security_policies:\n  rate_limiting:\n    requests_per_minute: 20\n"
          "    burst_size: 3\n"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(EncryptAs(*app)) << i;
  auto throttled = EncryptAs(*app);
  ASSERT_FALSE(throttled);
  EXPECT_EQ(throttled.error().code(), Code::kThrottled);
  EXPECT_THAT(throttled.error().message(), HasSubstr("requests_per_minute"));
  ASSERT_TRUE(throttled.error().retry_after_ms().has_value());
  EXPECT_GE(*throttled.error().retry_after_ms(), 1u);
  EXPECT_LE(*throttled.error().retry_after_ms(), 3000u);
  // After the retry-after, one more is admitted, and then not another.
  std::this_thread::sleep_for(std::chrono::milliseconds(*throttled.error().retry_after_ms() + 50));
  EXPECT_TRUE(EncryptAs(*app));
  EXPECT_EQ(CodeOf(EncryptAs(*app)), Code::kThrottled);
  // The admin and another tenant's principal go on.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(EncryptAs(*connection_)) << i;
    EXPECT_TRUE(EncryptAs(*other, "globex")) << i;
  }
  if (SecondsToUtcMidnight() < 60) return;  // the day's count could start again
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
  for (int i = 0; i < 4; ++i) connections.push_back(DialWithNewKey("acme", "app"));
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
  // Every place was given back: one caller at a time is always let in (its
  // place is free before its reply is sent).
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(EncryptAs(*connections[i % 4])) << i;
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
  // Operations without a tenant are the principal's tenant's too.
  auto random = CallOp<ops::GenerateRandom>(*app, "", {.number_of_bytes = 16});
  ASSERT_FALSE(random);
  EXPECT_EQ(random.error().code(), Code::kAccessDenied);
  EXPECT_THAT(random.error().message(), HasSubstr("time_windows"));
  EXPECT_EQ(CodeOf(CallOp<ops::ServiceStatus>(*app, "", {})), Code::kAccessDenied);
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

  if (SecondsToUtcMidnight() < 60) return;  // the day's count could start again
  auto app = Principal("acme", "app", {"user"});
  // A data key that is not made is not counted.
  EXPECT_EQ(CodeOf(CallOp<ops::GenerateDataKey>(*app, "acme",
                                                {.key = "no-such-key",
                                                 .context = {},
                                                 .key_spec = std::nullopt,
                                                 .number_of_bytes = std::nullopt})),
            Code::kNotFound);
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
  const auto flood_started = std::chrono::steady_clock::now();
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
  const double flood_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flood_started).count();
  EXPECT_EQ(b_ok, 60) << (b_failures.empty() ? "" : b_failures.front());
  EXPECT_GT(flood_throttled.load(), flood_ok.load());  // mostly refused
  // A got its burst and its rate (10 a second), not more.
  EXPECT_LE(flood_ok.load(), 20u + static_cast<uint64_t>(10 * flood_seconds) + 4u);
}

// kmsctl tenant policy put|get, and the exit codes of THROTTLED (12) and
// QUOTA_EXCEEDED (8) (docs/CLI.md).
TEST_F(TenantPolicyTest, KmsctlPutsAndGetsPoliciesAndExitsWithTheirCodes) {
  const std::string seeded = "acme-manufacturing";
  MustCall("tenant.create", seeded);
  const std::string path = dir_ / "policy.yaml";
  const std::string document = std::string(kSecuritySeed);
  std::ofstream(path) << document;
  CommandResult put = RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", seeded, path});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_THAT(put.out, HasSubstr("# security_policies.data_protection.data_locality: "
                                 "not_applicable: "));
  CommandResult got = RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "get", seeded});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out.substr(0, document.size()), document);
  EXPECT_EQ(got.out.substr(document.size()), put.out);
  // What get printed goes back in as it is.
  const std::string again = dir_ / "again.yaml";
  std::ofstream(again) << got.out;
  EXPECT_EQ(RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", seeded, again}).exit_code,
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
  EXPECT_EQ(
      RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", "acme", dir_ / "missing.yaml"})
          .exit_code,
      2);

  // QUOTA_EXCEEDED: exit 8; THROTTLED: exit 12, with the time to wait. The
  // document comes on stdin.
  ASSERT_EQ(RunKmsctl(daemon_->socket_path(), {"tenant", "policy", "put", "acme", "-"},
                      "resource_quotas:\n  keys:\n    max_data_keys_per_day: 1\n")
                .exit_code,
            0);
  auto data_key = [&](const std::map<std::string, std::string>& env) {
    return RunKmsctl(daemon_->socket_path(),
                     {"data-key", "--tenant", "acme", "--key", "orders", "--no-plaintext"}, "",
                     env);
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
    return RunKmsctl(daemon_->socket_path(), {"encrypt", "--tenant", "acme", "--key", "orders"},
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
