// TenantPolicy: the seeds' YAML documents as they are, kmsd's own fields, the
// notes on what is not enforced, every refusal by field path; and the pure
// decisions (time windows, rate limiter, daily quota) over injected times.
#include "policy/tenant_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/support/seed_policies.h"

namespace kmsd {

// For gtest's messages: the note kind by its wire name.
void PrintTo(PolicyNoteKind kind, std::ostream* out) { *out << PolicyNoteKindName(kind); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kQuotaSeed;
using testing::kSecuritySeed;
using ::testing::Not;

constexpr std::string_view kTenant = "acme-manufacturing";

using NoteRow = std::pair<std::string, PolicyNoteKind>;
constexpr auto kNa = PolicyNoteKind::kNotApplicable;
constexpr auto kElsewhere = PolicyNoteKind::kServedElsewhere;
constexpr auto kUnknown = PolicyNoteKind::kUnknown;

const std::vector<NoteRow> kSecurityNotes = {
    {"security_policies.version", kNa},
    {"security_policies.data_protection.data_locality", kNa},
    {"security_policies.data_protection.cross_region_encryption", kNa},
    {"security_policies.access_control.ip_whitelist", kNa},
    {"security_policies.audit_logging.log_all_operations", kElsewhere},
    {"security_policies.audit_logging.log_data_access", kElsewhere},
    {"security_policies.audit_logging.log_admin_actions", kElsewhere},
    {"security_policies.audit_logging.retention_days", kElsewhere},
    {"security_policies.compliance.frameworks", kNa},
    {"security_policies.compliance.data_classification", kNa},
    {"security_policies.compliance.pii_handling", kNa},
    {"security_policies.rate_limiting.cost_threshold", kNa},
};

const std::vector<NoteRow> kQuotaNotes = {
    {"resource_quotas.compute.max_request_duration", kNa},
    {"resource_quotas.compute.max_memory_usage", kNa},
    {"resource_quotas.storage.max_data_size", kElsewhere},
    {"resource_quotas.storage.max_file_count", kElsewhere},
    {"resource_quotas.storage.max_file_size", kElsewhere},
    {"resource_quotas.cost.monthly_budget", kNa},
    {"resource_quotas.cost.daily_limit", kNa},
    {"resource_quotas.cost.cost_alert_threshold", kNa},
    {"resource_quotas.domains", kNa},
};

std::vector<NoteRow> Rows(const std::vector<PolicyNote>& notes) {
  std::vector<NoteRow> rows;
  for (const PolicyNote& note : notes) {
    EXPECT_FALSE(note.note.empty()) << note.field;
    rows.emplace_back(note.field, note.kind);
  }
  return rows;
}

ParsedTenantPolicy MustParse(std::string_view yaml) {
  auto parsed = ParseTenantPolicy(yaml, kTenant);
  EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().ToString()) << "\n" << yaml;
  return parsed ? *parsed : ParsedTenantPolicy{};
}

// INVALID_ARGUMENT whose message names `field` (quoted) and says `why`.
::testing::AssertionResult Refused(std::string_view yaml, const std::string& field,
                                   const std::string& why) {
  auto parsed = ParseTenantPolicy(yaml, kTenant);
  if (parsed) return ::testing::AssertionFailure() << "accepted:\n" << yaml;
  const Status& s = parsed.error();
  if (s.code() != Code::kInvalidArgument ||
      s.message().find("'" + field + "'") == std::string::npos ||
      s.message().find(why) == std::string::npos) {
    return ::testing::AssertionFailure() << "got " << s << "; want INVALID_ARGUMENT naming '"
                                         << field << "' with \"" << why << "\" for:\n"
                                         << yaml;
  }
  return ::testing::AssertionSuccess();
}

// INVALID_ARGUMENT whose message holds `what` (no field to name).
::testing::AssertionResult RefusedDocument(std::string_view yaml, const std::string& what) {
  auto parsed = ParseTenantPolicy(yaml, kTenant);
  if (parsed) return ::testing::AssertionFailure() << "accepted";
  if (parsed.error().code() != Code::kInvalidArgument ||
      parsed.error().message().find(what) == std::string::npos) {
    return ::testing::AssertionFailure() << "got " << parsed.error() << "; want \"" << what << "\"";
  }
  return ::testing::AssertionSuccess();
}

// --- The seeds -------------------------------------------------------------

TEST(TenantPolicyTest, SecuritySeedLoadsAsItIs) {
  const ParsedTenantPolicy parsed = MustParse(kSecuritySeed);
  const TenantPolicy& p = parsed.policy;
  EXPECT_EQ(p.key_rotation_days, 90u);
  EXPECT_EQ(p.max_concurrent_sessions, 100u);
  EXPECT_EQ(p.session_timeout_minutes, 480u);
  EXPECT_TRUE(p.mfa_required);
  EXPECT_THAT(p.ip_whitelist, ElementsAre("10.0.0.0/8", "172.16.0.0/12"));
  EXPECT_FALSE(p.allowed_peers);
  EXPECT_TRUE(p.time_windows.empty());
  EXPECT_EQ(p.audit_retention_days, 2555u);
  EXPECT_TRUE(p.log_all_operations && p.log_data_access && p.log_admin_actions);
  EXPECT_EQ(p.rate.per_minute, 1000u);
  EXPECT_EQ(p.rate.per_hour, 50000u);
  EXPECT_EQ(p.rate.burst, 100u);
  EXPECT_FALSE(p.rate.per_day);
  EXPECT_FALSE(p.max_concurrent_requests);
  EXPECT_FALSE(p.max_keys);
  EXPECT_EQ(Rows(parsed.notes), kSecurityNotes);
}

TEST(TenantPolicyTest, QuotaSeedLoadsAsItIs) {
  const ParsedTenantPolicy parsed = MustParse(kQuotaSeed);
  const TenantPolicy& p = parsed.policy;
  EXPECT_EQ(p.max_concurrent_requests, 100u);
  EXPECT_EQ(p.max_data_size, 100'000'000'000u);
  EXPECT_EQ(p.max_file_count, 10000u);
  EXPECT_EQ(p.max_file_size, 1'000'000'000u);
  EXPECT_EQ(p.rate.per_minute, 1000u);
  EXPECT_EQ(p.rate.per_hour, 50000u);
  EXPECT_EQ(p.rate.per_day, 1000000u);
  EXPECT_FALSE(p.rate.burst);
  EXPECT_FALSE(p.key_rotation_days);
  EXPECT_FALSE(p.mfa_required);
  EXPECT_EQ(Rows(parsed.notes), kQuotaNotes);
}

TEST(TenantPolicyTest, BothSeedsInOneDocumentInEitherOrder) {
  std::vector<NoteRow> both = kSecurityNotes;
  both.insert(both.end(), kQuotaNotes.begin(), kQuotaNotes.end());
  const ParsedTenantPolicy parsed = MustParse(std::string(kSecuritySeed) + std::string(kQuotaSeed));
  EXPECT_EQ(Rows(parsed.notes), both);
  EXPECT_EQ(parsed.policy.key_rotation_days, 90u);
  EXPECT_EQ(parsed.policy.max_concurrent_requests, 100u);
  EXPECT_EQ(parsed.policy.rate.per_minute, 1000u);
  EXPECT_EQ(parsed.policy.rate.burst, 100u);
  EXPECT_EQ(parsed.policy.rate.per_day, 1000000u);

  const ParsedTenantPolicy reversed =
      MustParse(std::string(kQuotaSeed) + std::string(kSecuritySeed));
  EXPECT_EQ(reversed.notes.size(), both.size());
  EXPECT_EQ(reversed.notes.front().field, "resource_quotas.compute.max_request_duration");
}

TEST(TenantPolicyTest, NotesSayWhy) {
  const ParsedTenantPolicy parsed = MustParse(kSecuritySeed);
  ASSERT_GE(parsed.notes.size(), 4u);
  EXPECT_EQ(parsed.notes[0].note, "kept as written; kmsd versions the stored document by time");
  EXPECT_EQ(parsed.notes[3].note,
            "applies to network front ends only; the IPC socket has no addresses");
  EXPECT_EQ(PolicyNoteKindName(PolicyNoteKind::kUnknown), "unknown");
  EXPECT_EQ(PolicyNoteKindName(PolicyNoteKind::kNotApplicable), "not_applicable");
  EXPECT_EQ(PolicyNoteKindName(PolicyNoteKind::kServedElsewhere), "served_elsewhere");
}

TEST(TenantPolicyTest, TheSeedsForAnotherTenantAreRefusedNamingTheField) {
  auto parsed = ParseTenantPolicy(kSecuritySeed, "globex");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(parsed.error().message(), HasSubstr("'security_policies.tenant_id'"));
  EXPECT_THAT(parsed.error().message(), HasSubstr("'globex'"));
  parsed = ParseTenantPolicy(kQuotaSeed, "globex");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(parsed.error().message(), HasSubstr("'resource_quotas.tenant_id'"));
}

// --- kmsd's own fields ------------------------------------------------------

TEST(TenantPolicyTest, KmsdOwnFieldsLoad) {
  const ParsedTenantPolicy parsed = MustParse(R"(
security_policies:
  access_control:
    allowed_peers:
      uids: [1000, 1001]
      gids: [100]
    time_windows:
      - days: [mon, tue, wed, thu, fri]
        from: "08:00"
        until: "18:00"
        utc_offset: "+01:00"
      - days: weekend
        from: "22:00"
        until: "24:00"
resource_quotas:
  keys:
    max_keys: 100
    max_data_keys_per_day: 100000
)");
  const TenantPolicy& p = parsed.policy;
  ASSERT_TRUE(p.allowed_peers);
  EXPECT_EQ(p.allowed_peers->uids, (std::set<uint64_t>{1000, 1001}));
  EXPECT_EQ(p.allowed_peers->gids, (std::set<uint64_t>{100}));
  ASSERT_EQ(p.time_windows.size(), 2u);
  EXPECT_EQ(p.time_windows[0].days, 0x1f);
  EXPECT_EQ(p.time_windows[0].from_minute, 8 * 60);
  EXPECT_EQ(p.time_windows[0].until_minute, 18 * 60);
  EXPECT_EQ(p.time_windows[0].utc_offset_minutes, 60);
  EXPECT_EQ(p.time_windows[1].days, 0x60);
  EXPECT_EQ(p.time_windows[1].until_minute, 1440);
  EXPECT_EQ(p.time_windows[1].utc_offset_minutes, 0);
  EXPECT_EQ(p.max_keys, 100u);
  EXPECT_EQ(p.max_data_keys_per_day, 100000u);
  EXPECT_TRUE(parsed.notes.empty());
}

TEST(TenantPolicyTest, TimeWindowSpellings) {
  const ParsedTenantPolicy parsed = MustParse(R"(
security_policies:
  access_control:
    time_windows:
      - {days: daily, from: "22:00", until: "06:00", utc_offset: "UTC"}
      - {days: [sun], from: "09:30", until: "00:00", utc_offset: "Z"}
      - {days: [sat, sat], from: 00:00, until: 24:00, utc_offset: "-05:30"}
      - {days: [mon], from: "00:00", until: "00:30", utc_offset: +14:00}
)");
  const auto& w = parsed.policy.time_windows;
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].days, 0x7f);
  EXPECT_EQ(w[0].from_minute, 22 * 60);
  EXPECT_EQ(w[0].until_minute, 6 * 60);
  EXPECT_EQ(w[1].days, 0x40);
  EXPECT_EQ(w[1].from_minute, 9 * 60 + 30);
  EXPECT_EQ(w[1].until_minute, 1440);  // "00:00" as until: the midnight after
  EXPECT_EQ(w[2].days, 0x20);
  EXPECT_EQ(w[2].from_minute, 0);
  EXPECT_EQ(w[2].until_minute, 1440);
  EXPECT_EQ(w[2].utc_offset_minutes, -330);
  EXPECT_EQ(w[3].utc_offset_minutes, 14 * 60);

  // An empty list is no restriction.
  EXPECT_TRUE(MustParse("security_policies:\n  access_control:\n    time_windows: []\n")
                  .policy.time_windows.empty());
}

TEST(TenantPolicyTest, TheStricterOfBothSectionsWins) {
  const TenantPolicy p = MustParse(R"(
security_policies:
  rate_limiting: {requests_per_minute: 1000, requests_per_hour: 40000}
resource_quotas:
  api: {requests_per_minute: 500, requests_per_hour: 50000}
)")
                             .policy;
  EXPECT_EQ(p.rate.per_minute, 500u);
  EXPECT_EQ(p.rate.per_hour, 40000u);
  EXPECT_FALSE(p.rate.per_day);
  EXPECT_FALSE(p.rate.burst);
}

TEST(TenantPolicyTest, BurstNeedsARatePerMinuteFromEitherSection) {
  EXPECT_TRUE(Refused("security_policies:\n  rate_limiting:\n    burst_size: 10\n",
                      "security_policies.rate_limiting.burst_size", "requests_per_minute"));
  EXPECT_TRUE(Refused(
      "security_policies:\n  rate_limiting:\n    burst_size: 10\n    requests_per_hour: 5\n",
      "security_policies.rate_limiting.burst_size", "requests_per_minute"));
  const TenantPolicy p = MustParse(R"(
security_policies:
  rate_limiting: {burst_size: 10}
resource_quotas:
  api: {requests_per_minute: 600}
)")
                             .policy;
  EXPECT_EQ(p.rate.per_minute, 600u);
  EXPECT_EQ(p.rate.burst, 10u);
}

TEST(TenantPolicyTest, AbsentFieldsKeepTheirDefaults) {
  const TenantPolicy p =
      MustParse("security_policies:\n  audit_logging:\n    log_data_access: false\n").policy;
  EXPECT_TRUE(p.log_all_operations);
  EXPECT_FALSE(p.log_data_access);
  EXPECT_TRUE(p.log_admin_actions);
  EXPECT_FALSE(p.audit_retention_days);
  EXPECT_FALSE(p.rate.any());
  EXPECT_FALSE(p.mfa_required);
  EXPECT_TRUE(p.ip_whitelist.empty());
}

TEST(TenantPolicyTest, SizesInDecimalAndBinaryUnitsOrBytes) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"\"512MB\"", 512'000'000},
      {"\"10KiB\"", 10240},
      {"\"1 GiB\"", 1ull << 30},
      {"\"2TB\"", 2'000'000'000'000},
      {"\"1TiB\"", 1ull << 40},
      {"\"7B\"", 7},
      {"2048", 2048},
      {"0", 0},
      {"\"3KB\"", 3000},
      {"18446744073709551615", 18446744073709551615ull},
      {"\"16777215TiB\"", 16777215ull << 40},
  };
  for (const auto& [written, bytes] : cases) {
    const TenantPolicy p =
        MustParse("resource_quotas:\n  storage:\n    max_file_size: " + written + "\n").policy;
    EXPECT_EQ(p.max_file_size, bytes) << written;
  }
}

TEST(TenantPolicyTest, VersionIsAnyString) {
  const ParsedTenantPolicy parsed = MustParse("security_policies:\n  version: 2.1\n");
  EXPECT_EQ(Rows(parsed.notes), (std::vector<NoteRow>{{"security_policies.version", kNa}}));
}

// --- Unknown fields -----------------------------------------------------------

TEST(TenantPolicyTest, UnknownFieldsAreNotedByFullPathNotDropped) {
  const ParsedTenantPolicy parsed = MustParse(R"(
security_policies:
  data_protection:
    key_rotation_days: 30
    hsm_backed: true
  network:
    vpn_required: true
    zones: [a, b]
  access_control:
    allowed_peers: {uids: [7]}
resource_quotas:
  tenant_id: acme-manufacturing
  gpu: {count: 2}
  keys:
    max_keys: 5
    max_key_size: 4096
)");
  EXPECT_EQ(Rows(parsed.notes),
            (std::vector<NoteRow>{{"security_policies.data_protection.hsm_backed", kUnknown},
                                  {"security_policies.network", kUnknown},
                                  {"resource_quotas.gpu", kUnknown},
                                  {"resource_quotas.keys.max_key_size", kUnknown}}));
  EXPECT_EQ(parsed.notes[0].note,
            "not a field kmsd knows; kept in the stored document, not applied");
  EXPECT_EQ(parsed.policy.key_rotation_days, 30u);
  ASSERT_TRUE(parsed.policy.allowed_peers.has_value());
  EXPECT_EQ(parsed.policy.max_keys, 5u);
}

// --- The document -----------------------------------------------------------

TEST(TenantPolicyTest, TheTopLevelHoldsOnlyTheTwoSections) {
  EXPECT_TRUE(Refused("security_policies: {}\nlimits:\n  workers: 8\n", "limits",
                      "only security_policies and resource_quotas"));
  EXPECT_TRUE(Refused(std::string(kSecuritySeed) + "pkcs11: {}\n", "pkcs11", "top level"));
  EXPECT_TRUE(Refused("security_policies: {}\nsecurity_policies: {}\n", "security_policies",
                      "appears twice"));
  EXPECT_TRUE(RefusedDocument("{}", "neither security_policies nor resource_quotas"));
  EXPECT_TRUE(RefusedDocument("just a string", "the top level must be a map"));
  EXPECT_TRUE(RefusedDocument("- security_policies: {}\n", "the top level must be a map"));
  EXPECT_TRUE(Refused("security_policies: 5\n", "security_policies", "must be a map"));
  EXPECT_TRUE(Refused("resource_quotas:\n", "resource_quotas", "must be a map"));
  EXPECT_TRUE(Refused("resource_quotas: [a]\n", "resource_quotas", "must be a map"));
}

TEST(TenantPolicyTest, EmptyOrNotYamlIsRefusedWithWhere) {
  EXPECT_TRUE(RefusedDocument("", "empty"));
  EXPECT_TRUE(RefusedDocument("# nothing but a comment\n", "empty"));
  EXPECT_TRUE(RefusedDocument("---\n...\n", "empty"));
  EXPECT_TRUE(RefusedDocument("security_policies:\n  version: [unclosed\n",
                              "yaml-cpp: error at line 3, column 1"));
  EXPECT_TRUE(RefusedDocument("security_policies: {a: 1\n", "not valid YAML"));
  EXPECT_TRUE(RefusedDocument("security_policies:\n\tversion: 1\n", "not valid YAML"));
  EXPECT_TRUE(RefusedDocument("\"unterminated", "not valid YAML"));
}

TEST(TenantPolicyTest, OneDocumentOnly) {
  // Built by append: GCC 12 warns falsely (-Warray-bounds) on a chain of +.
  std::string two_documents(kSecuritySeed);
  two_documents.append("---\n").append(kQuotaSeed);
  EXPECT_TRUE(RefusedDocument(two_documents, "more than one YAML document"));
}

TEST(TenantPolicyTest, AnOversizedDocumentIsRefused) {
  std::string yaml(kSecuritySeed);
  yaml += "  padding: \"" + std::string(kMaxPolicyDocumentBytes, 'x') + "\"\n";
  EXPECT_TRUE(RefusedDocument(yaml, "over the limit of 65536"));
  // Just under the limit is read.
  std::string fits(kSecuritySeed);
  fits += "#";
  fits.resize(kMaxPolicyDocumentBytes - 1, 'x');
  fits += "\n";
  EXPECT_EQ(MustParse(fits).policy.key_rotation_days, 90u);
}

TEST(TenantPolicyTest, AliasesAreRefusedAnchorsAloneAreHarmless) {
  EXPECT_TRUE(RefusedDocument(R"(
security_policies:
  compliance:
    frameworks: &f ["SOX"]
  extra: *f
)",
                              "aliases"));
  // A billion laughs is refused at its first alias, before any node is built.
  std::string laughs = "security_policies:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    laughs += "  a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev +
              ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev +
              "]\n";
  }
  EXPECT_TRUE(RefusedDocument(laughs, "aliases (*name) are not accepted (line 3"));
  const ParsedTenantPolicy anchored =
      MustParse("security_policies:\n  compliance:\n    frameworks: &f [SOX]\n");
  EXPECT_EQ(anchored.notes.size(), 1u);
}

TEST(TenantPolicyTest, DeepNestingIsRefusedNotACrash) {
  // 16 levels (the sections count) are read; the 17th is refused.
  std::string ok = "security_policies:\n  x: ";
  std::string deep = ok;
  for (int i = 0; i < 14; ++i) ok += "[";
  for (int i = 0; i < 14; ++i) ok += "]";
  for (int i = 0; i < 15; ++i) deep += "[";
  for (int i = 0; i < 15; ++i) deep += "]";
  EXPECT_EQ(MustParse(ok + "\n").notes.size(), 1u);
  EXPECT_TRUE(RefusedDocument(deep + "\n", "nested deeper than 16 levels"));
  // As deep as the size limit allows, in flow and block style.
  EXPECT_TRUE(RefusedDocument(std::string(60000, '['), "nested deeper than 16 levels"));
  std::string block;
  for (int i = 0; i < 200; ++i) block += std::string(i, ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_TRUE(RefusedDocument(block, "nested deeper than 16 levels"));
}

TEST(TenantPolicyTest, GarbageNeverThrows) {
  const std::vector<std::string> inputs = {
      std::string("\0\1\2\3", 4),
      "\xff\xfe\xfd",
      "!!binary AAAA",
      "? [a]\n: b\n",
      "security_policies:\n  ? [a, b]\n  : c\n",
      "%YAML 9.9\n---\na: 1\n",
      "&a [*a]",
      "[a, b]: c",
      ",\n~\n",  // yaml-cpp 0.7 sees endless empty documents in this
      ",",
      "security_policies: {version: !!str}\n",
      "security_policies:\n  access_control: {time_windows: [{days: !!seq [mon]}]}\n",
  };
  for (const std::string& input : inputs) {
    auto parsed = ParseTenantPolicy(input, kTenant);
    if (parsed) {
      ADD_FAILURE() << "accepted: " << input;
    } else {
      EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument) << parsed.error();
    }
  }
  // Tags on a map or a string are no harm.
  EXPECT_TRUE(MustParse("security_policies: !!map {}\n").notes.empty());
  EXPECT_EQ(MustParse("{security_policies: {version: !custom x}}").notes.size(), 1u);
}

// --- Fields ---------------------------------------------------------------------

struct FieldCase {
  std::string yaml;
  std::string field;
  std::string why;
};

void ExpectAllRefused(const std::vector<FieldCase>& cases) {
  for (const FieldCase& c : cases) EXPECT_TRUE(Refused(c.yaml, c.field, c.why));
}

std::string Sec(const std::string& section, const std::string& body) {
  return "security_policies:\n  " + section + ":\n    " + body + "\n";
}
std::string Quota(const std::string& section, const std::string& body) {
  return "resource_quotas:\n  " + section + ":\n    " + body + "\n";
}

TEST(TenantPolicyTest, TenantIdMustBeTheTenants) {
  ExpectAllRefused({
      {"security_policies:\n  tenant_id: other\n", "security_policies.tenant_id",
       "must be 'acme-manufacturing', the tenant the policy is put for"},
      {"resource_quotas:\n  tenant_id: ACME-manufacturing\n", "resource_quotas.tenant_id",
       "acme-manufacturing"},
      {"resource_quotas:\n  tenant_id: \"\"\n", "resource_quotas.tenant_id", "non-empty string"},
      {"resource_quotas:\n  tenant_id: [acme-manufacturing]\n", "resource_quotas.tenant_id",
       "string"},
  });
  // The caller's value is not echoed back.
  auto parsed = ParseTenantPolicy("security_policies:\n  tenant_id: globex\n", kTenant);
  ASSERT_FALSE(parsed);
  EXPECT_THAT(parsed.error().message(), Not(HasSubstr("globex")));
}

TEST(TenantPolicyTest, DataProtectionFields) {
  const std::string p = "security_policies.data_protection.";
  ExpectAllRefused({
      {Sec("data_protection", "encryption_level: AES-128"), p + "encryption_level", "AES-256"},
      {Sec("data_protection", "encryption_level: aes-256"), p + "encryption_level", "AES-256"},
      {Sec("data_protection", "encryption_level: 256"), p + "encryption_level", "AES-256"},
      {Sec("data_protection", "key_rotation_days: \"90\""), p + "key_rotation_days",
       "must be an integer from 1 to 3650"},
      {Sec("data_protection", "key_rotation_days: 0"), p + "key_rotation_days",
       "must be from 1 to 3650"},
      {Sec("data_protection", "key_rotation_days: 3651"), p + "key_rotation_days", "1 to 3650"},
      {Sec("data_protection", "key_rotation_days: -5"), p + "key_rotation_days", "1 to 3650"},
      {Sec("data_protection", "key_rotation_days: 1.5"), p + "key_rotation_days",
       "must be an integer"},
      {Sec("data_protection", "key_rotation_days: 99999999999999999999999"),
       p + "key_rotation_days", "1 to 3650"},
      {Sec("data_protection", "key_rotation_days:"), p + "key_rotation_days", "must be an integer"},
      {Sec("data_protection", "data_locality: us-east-1"), p + "data_locality",
       "must be a list of strings"},
      {Sec("data_protection", "data_locality: [us-east-1, [x]]"), p + "data_locality[1]", "string"},
      {Sec("data_protection", "cross_region_encryption: yes"), p + "cross_region_encryption",
       "must be true or false"},
      {Sec("data_protection", "cross_region_encryption: \"true\""), p + "cross_region_encryption",
       "must be true or false"},
      {Sec("data_protection", "cross_region_encryption: 1"), p + "cross_region_encryption",
       "true or false"},
      {"security_policies:\n  data_protection: [a]\n", "security_policies.data_protection",
       "must be a map"},
      {Sec("data_protection", "key_rotation_days: 1\n    key_rotation_days: 2"),
       p + "key_rotation_days", "appears twice"},
  });
  EXPECT_EQ(MustParse(Sec("data_protection", "key_rotation_days: 3650")).policy.key_rotation_days,
            3650u);
  EXPECT_EQ(MustParse(Sec("data_protection", "key_rotation_days: 1")).policy.key_rotation_days, 1u);
  EXPECT_EQ(
      MustParse(Sec("data_protection", "key_rotation_days: !!int 7")).policy.key_rotation_days, 7u);
  EXPECT_TRUE(MustParse(Sec("data_protection", "cross_region_encryption: False")).notes.size() ==
              1);
}

TEST(TenantPolicyTest, AccessControlFields) {
  const std::string p = "security_policies.access_control.";
  ExpectAllRefused({
      {Sec("access_control", "max_concurrent_sessions: 0"), p + "max_concurrent_sessions",
       "from 1 to 100000"},
      {Sec("access_control", "max_concurrent_sessions: 100001"), p + "max_concurrent_sessions",
       "from 1 to 100000"},
      {Sec("access_control", "session_timeout_minutes: 525601"), p + "session_timeout_minutes",
       "from 1 to 525600"},
      {Sec("access_control", "session_timeout_minutes: '480'"), p + "session_timeout_minutes",
       "must be an integer"},
      {Sec("access_control", "mfa_required: on"), p + "mfa_required", "must be true or false"},
      {Sec("access_control", "ip_whitelist: 10.0.0.0/8"), p + "ip_whitelist",
       "must be a list of CIDRs"},
      {Sec("access_control", "ip_whitelist: [\"10.0.0.0/33\"]"), p + "ip_whitelist[0]",
       "IPv4 or IPv6"},
      {Sec("access_control", "ip_whitelist: [\"10.0.0.0/8\", \"300.0.0.0/8\"]"),
       p + "ip_whitelist[1]", "IPv4 or IPv6"},
      {Sec("access_control", "ip_whitelist: [\"fe80::/129\"]"), p + "ip_whitelist[0]", "IPv6"},
      {Sec("access_control", "ip_whitelist: [\"10.0.0.0/\"]"), p + "ip_whitelist[0]", "IPv4"},
      {Sec("access_control", "ip_whitelist: [\"10.0.0.0/+8\"]"), p + "ip_whitelist[0]", "IPv4"},
      {Sec("access_control", "ip_whitelist: [\"10.0.0.0/8/8\"]"), p + "ip_whitelist[0]", "IPv4"},
      {Sec("access_control", "ip_whitelist: [\"fe80::1%eth0/64\"]"), p + "ip_whitelist[0]", "IPv6"},
      {Sec("access_control", "ip_whitelist: [localhost]"), p + "ip_whitelist[0]", "IPv4"},
  });
  const TenantPolicy ok = MustParse(Sec("access_control",
                                        "ip_whitelist: [\"2001:db8::/32\", \"192.168.1.7\", "
                                        "\"::1/128\", \"0.0.0.0/0\"]\n    mfa_required: false"))
                              .policy;
  EXPECT_EQ(ok.ip_whitelist.size(), 4u);
  EXPECT_FALSE(ok.mfa_required);
}

TEST(TenantPolicyTest, AllowedPeersFields) {
  const std::string p = "security_policies.access_control.allowed_peers";
  ExpectAllRefused({
      {Sec("access_control", "allowed_peers: [1000]"), p, "must be a map of uids and/or gids"},
      {Sec("access_control", "allowed_peers: {}"), p, "at least one uid or gid"},
      {Sec("access_control", "allowed_peers: {uids: []}"), p, "at least one uid or gid"},
      {Sec("access_control", "allowed_peers: {uids: [-1]}"), p + ".uids[0]",
       "from 0 to 4294967294"},
      {Sec("access_control", "allowed_peers: {gids: [1, 4294967295]}"), p + ".gids[1]",
       "from 0 to 4294967294"},
      {Sec("access_control", "allowed_peers: {uids: [\"1000\"]}"), p + ".uids[0]",
       "must be an integer"},
      {Sec("access_control", "allowed_peers: {uids: 1000}"), p + ".uids",
       "must be a list of numeric ids"},
      {Sec("access_control", "allowed_peers: {uid: [1000]}"), p + ".uid", "is not uids or gids"},
      {Sec("access_control", "allowed_peers: {uids: [1], uids: [2]}"), p + ".uids",
       "appears twice"},
  });
  const TenantPolicy root = MustParse(Sec("access_control", "allowed_peers: {uids: [0]}")).policy;
  ASSERT_TRUE(root.allowed_peers);
  EXPECT_EQ(root.allowed_peers->uids, (std::set<uint64_t>{0}));
  EXPECT_TRUE(root.allowed_peers->gids.empty());
}

TEST(TenantPolicyTest, TimeWindowFields) {
  const std::string p = "security_policies.access_control.time_windows";
  auto window = [](const std::string& body) {
    return Sec("access_control", "time_windows:\n      - " + body);
  };
  const std::string hours = "from: \"08:00\", until: \"18:00\"";
  ExpectAllRefused({
      {Sec("access_control", "time_windows: {days: daily}"), p, "must be a list of time windows"},
      {window("daily"), p + "[0]", "must be a map"},
      {window("{" + hours + "}"), p + "[0].days", "is required"},
      {window("{days: daily, from: \"08:00\"}"), p + "[0].until", "is required"},
      {window("{days: daily, until: \"08:00\"}"), p + "[0].from", "is required"},
      {window("{days: [monday], " + hours + "}"), p + "[0].days", "mon, tue"},
      {window("{days: [Mon], " + hours + "}"), p + "[0].days", "mon, tue"},
      {window("{days: [], " + hours + "}"), p + "[0].days", "mon, tue"},
      {window("{days: mon, " + hours + "}"), p + "[0].days", "weekdays, weekend, daily"},
      {window("{days: [weekdays], " + hours + "}"), p + "[0].days", "mon, tue"},
      {window("{days: daily, from: \"8:00\", until: \"18:00\"}"), p + "[0].from",
       "must be a time \"HH:MM\""},
      {window("{days: daily, from: \"24:00\", until: \"18:00\"}"), p + "[0].from",
       "00:00 to 23:59"},
      {window("{days: daily, from: \"08:60\", until: \"18:00\"}"), p + "[0].from", "HH:MM"},
      {window("{days: daily, from: \"08:00\", until: \"24:01\"}"), p + "[0].until",
       "00:00 to 24:00"},
      {window("{days: daily, from: \"08:00\", until: 1080}"), p + "[0].until", "HH:MM"},
      {window("{days: daily, from: \"08:00\", until: \"08:00\"}"), p + "[0].until",
       "must differ from from"},
      {window("{days: daily, from: \"00:00\", until: \"00:00\"}"), p + "[0].until",
       "must differ from from"},
      {window("{days: daily, " + hours + ", utc_offset: \"+15:00\"}"), p + "[0].utc_offset",
       "within 14:00 of UTC"},
      {window("{days: daily, " + hours + ", utc_offset: \"+01\"}"), p + "[0].utc_offset",
       "\"+HH:MM\""},
      {window("{days: daily, " + hours + ", utc_offset: \"CET\"}"), p + "[0].utc_offset",
       "\"UTC\""},
      {window("{days: daily, " + hours + ", utc_offset: 1}"), p + "[0].utc_offset", "+HH:MM"},
      {window("{days: daily, " + hours + ", zone: UTC}"), p + "[0].zone",
       "is not days, from, until or utc_offset"},
      {window("{days: daily, " + hours + "}\n      - {days: daily, from: x, until: y}"),
       p + "[1].from", "HH:MM"},
  });
}

TEST(TenantPolicyTest, AuditAndComplianceFields) {
  const std::string a = "security_policies.audit_logging.";
  const std::string c = "security_policies.compliance.";
  ExpectAllRefused({
      {Sec("audit_logging", "retention_days: 0"), a + "retention_days", "from 1 to 36500"},
      {Sec("audit_logging", "retention_days: 36501"), a + "retention_days", "from 1 to 36500"},
      {Sec("audit_logging", "log_data_access: \"yes\""), a + "log_data_access", "true or false"},
      {Sec("audit_logging", "log_all_operations: 1"), a + "log_all_operations", "true or false"},
      {Sec("audit_logging", "log_admin_actions: null"), a + "log_admin_actions", "true or false"},
      {Sec("compliance", "frameworks: SOX"), c + "frameworks", "list of strings"},
      {Sec("compliance", "frameworks: [SOX, {a: b}]"), c + "frameworks[1]", "string"},
      {Sec("compliance", "data_classification: [confidential]"), c + "data_classification",
       "string"},
      {Sec("compliance", "pii_handling: {}"), c + "pii_handling", "string"},
  });
  const TenantPolicy p =
      MustParse(Sec("audit_logging", "log_all_operations: false\n    retention_days: 36500"))
          .policy;
  EXPECT_FALSE(p.log_all_operations);
  EXPECT_EQ(p.audit_retention_days, 36500u);
}

TEST(TenantPolicyTest, RateFields) {
  const std::string r = "security_policies.rate_limiting.";
  const std::string q = "resource_quotas.api.";
  ExpectAllRefused({
      {Sec("rate_limiting", "requests_per_minute: 0"), r + "requests_per_minute",
       "from 1 to 1000000000"},
      {Sec("rate_limiting", "requests_per_minute: 1000000001"), r + "requests_per_minute",
       "1 to 1000000000"},
      {Sec("rate_limiting", "requests_per_minute: \"1000\""), r + "requests_per_minute",
       "must be an integer"},
      {Sec("rate_limiting", "requests_per_hour: 1e3"), r + "requests_per_hour",
       "must be an integer"},
      {Sec("rate_limiting", "requests_per_minute: 5\n    burst_size: 0"), r + "burst_size",
       "1 to 1000000000"},
      {Sec("rate_limiting", "cost_threshold: high"), r + "cost_threshold",
       "must be a number, 0 or more"},
      {Sec("rate_limiting", "cost_threshold: \"5000\""), r + "cost_threshold", "number"},
      {Sec("rate_limiting", "cost_threshold: -1"), r + "cost_threshold", "number"},
      {Sec("rate_limiting", "cost_threshold: .nan"), r + "cost_threshold", "number"},
      {Quota("api", "requests_per_day: 0"), q + "requests_per_day", "1 to 1000000000"},
      {Quota("api", "requests_per_hour: [1]"), q + "requests_per_hour", "must be an integer"},
      {Quota("api", "requests_per_minute: true"), q + "requests_per_minute", "must be an integer"},
  });
  EXPECT_EQ(
      MustParse(Sec("rate_limiting", "requests_per_minute: 1000000000")).policy.rate.per_minute,
      1000000000u);
  EXPECT_EQ(MustParse(Sec("rate_limiting", "cost_threshold: 0")).notes.size(), 1u);
}

TEST(TenantPolicyTest, ComputeStorageCostDomainAndKeyFields) {
  const std::string c = "resource_quotas.compute.";
  const std::string s = "resource_quotas.storage.";
  const std::string k = "resource_quotas.keys.";
  ExpectAllRefused({
      {Quota("compute", "max_concurrent_requests: 0"), c + "max_concurrent_requests",
       "from 1 to 100000"},
      {Quota("compute", "max_concurrent_requests: 100001"), c + "max_concurrent_requests",
       "from 1 to 100000"},
      {Quota("compute", "max_request_duration: \"5m\""), c + "max_request_duration",
       "must be an integer"},
      {Quota("compute", "max_request_duration: 0"), c + "max_request_duration", "from 1"},
      {Quota("compute", "max_memory_usage: \"2 GBs\""), c + "max_memory_usage", "must be a size"},
      {Quota("compute", "max_memory_usage: \"2.5GB\""), c + "max_memory_usage", "must be a size"},
      {Quota("compute", "max_memory_usage: \"GB\""), c + "max_memory_usage", "must be a size"},
      {Quota("compute", "max_memory_usage: \"2gb\""), c + "max_memory_usage", "must be a size"},
      {Quota("compute", "max_memory_usage: \"-2GB\""), c + "max_memory_usage", "must be a size"},
      {Quota("storage", "max_data_size: \"99999999999TB\""), s + "max_data_size", "too large"},
      {Quota("storage", "max_data_size: 18446744073709551616"), s + "max_data_size", "too large"},
      {Quota("storage", "max_file_size: [1GB]"), s + "max_file_size", "must be a size"},
      {Quota("storage", "max_file_count: -1"), s + "max_file_count", "from 0 to"},
      {Quota("storage", "max_file_count: \"10000\""), s + "max_file_count", "must be an integer"},
      {Quota("cost", "monthly_budget: \"5000\""), "resource_quotas.cost.monthly_budget", "number"},
      {Quota("cost", "daily_limit: lots"), "resource_quotas.cost.daily_limit", "number"},
      {Quota("cost", "cost_alert_threshold: -0.8"), "resource_quotas.cost.cost_alert_threshold",
       "number"},
      {Quota("domains", "finance: \"no\""), "resource_quotas.domains.finance", "true or false"},
      {Quota("domains", "finance: no"), "resource_quotas.domains.finance", "true or false"},
      {"resource_quotas:\n  domains: [manufacturing]\n", "resource_quotas.domains",
       "must be a map"},
      {Quota("domains", "a: true\n    a: false"), "resource_quotas.domains.a", "appears twice"},
      {Quota("keys", "max_keys: 0"), k + "max_keys", "from 1 to 1000000"},
      {Quota("keys", "max_keys: 1000001"), k + "max_keys", "from 1 to 1000000"},
      {Quota("keys", "max_keys: \"100\""), k + "max_keys", "must be an integer"},
      {Quota("keys", "max_data_keys_per_day: 0"), k + "max_data_keys_per_day", "from 1"},
      {"resource_quotas:\n  keys: 5\n", "resource_quotas.keys", "must be a map"},
  });
  const TenantPolicy p =
      MustParse(Quota("keys", "max_keys: 1000000\n    max_data_keys_per_day: 1")).policy;
  EXPECT_EQ(p.max_keys, 1000000u);
  EXPECT_EQ(p.max_data_keys_per_day, 1u);
  EXPECT_EQ(MustParse(Quota("storage", "max_file_count: 0")).policy.max_file_count, 0u);
}

TEST(TenantPolicyTest, ControlCharactersAreRefusedBeforeAnythingIsRead) {
  for (const std::string& bad : {std::string("security_policies:\n  version: \"\x1b[2J\"\n"),
                                 std::string("security_policies:\n  version: \"a\x7f\"\n"),
                                 std::string("security_policies:\n  version: \"\xc2\x9b"
                                             "31m\"\n"),
                                 std::string("security_policies:\n  version: \"a\0b\"\n", 36)}) {
    auto parsed = ParseTenantPolicy(bad, kTenant);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
    EXPECT_THAT(parsed.error().message(), HasSubstr("control character"));
  }
  // Tabs, line ends (also CRLF) and other UTF-8 are fine.
  EXPECT_TRUE(
      ParseTenantPolicy("security_policies:\r\n  version: \"caf\xc3\xa9\t1\"\r\n", kTenant));
}

}  // namespace
}  // namespace kmsd
