#include "policy/tenant_policy.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

namespace kmsd {
namespace {

constexpr int kMaxDepth = 16;              // nested maps and lists
constexpr uint64_t kMaxRate = 1000000000;  // requests a minute, hour or day
constexpr uint64_t kMaxId = 4294967294;    // uid_t and gid_t, without (uid_t)-1
constexpr uint64_t kMaxCount = std::numeric_limits<uint64_t>::max();

constexpr std::string_view kUnknownWhy =
    "not a field kmsd knows; kept in the stored document, not applied";
constexpr std::string_view kNoRegions = "one host has no regions: keys stay in this host's token";
constexpr std::string_view kLabel =
    "a label: kmsd sees keys and opaque plaintext, no data fields to classify or redact";
constexpr std::string_view kNoCosts = "one host has no costs to count or bill";
constexpr std::string_view kAudit =
    "applied by the audit log: it chooses the details kept in the tenant's entries, never "
    "whether a request is recorded (docs/POLICY.md)";
constexpr std::string_view kRetention =
    "applied by the audit log: the tenant's entries older than this are pruned (docs/AUDIT.md)";
constexpr std::string_view kStorage =
    "served to the client library's per-tenant storage by tenant.describe";

std::string Where(const YAML::Mark& mark) {
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

// First pass over the parser's events, before any node is built: counts the
// documents and refuses aliases (no billion laughs) and deep nesting.
class Prescan : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override { ++documents_; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    Refuse(mark, "YAML aliases (*name) are not accepted");
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnMapEnd() override { --depth_; }

  struct Refusal {
    std::string why;
  };

  int documents() const { return documents_; }

 private:
  void Open(const YAML::Mark& mark) {
    if (++depth_ > kMaxDepth) {
      Refuse(mark, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
  }
  // Ends the scan at once (the parser is exception-safe: it throws its own).
  [[noreturn]] void Refuse(const YAML::Mark& mark, const std::string& why) {
    throw Refusal{why + " (" + Where(mark) + ")"};
  }

  int documents_ = 0;
  int depth_ = 0;
};

std::string Item(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

bool PlainOr(const YAML::Node& node, std::string_view core_tag) {
  return node.IsScalar() && (node.Tag() == "?" || node.Tag() == core_tag);
}

// [0-9]+ without overflow.
std::optional<uint64_t> Digits(std::string_view text) {
  uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.front() == '+') {
    return std::nullopt;
  }
  return value;
}

// "100GB", "512 MiB", "1024" (bytes).
std::optional<uint64_t> ParseSize(std::string_view text, bool* overflow) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view unit = text.substr(digits);
  if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  static constexpr std::string_view kUnits[] = {"",   "B",   "KB",  "MB",  "GB",
                                                "TB", "KiB", "MiB", "GiB", "TiB"};
  static constexpr uint64_t kFactors[] = {
      1,          1,          1000,       1000000,   1000000000, 1000000000000,
      1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40};
  const auto* found = std::find(std::begin(kUnits), std::end(kUnits), unit);
  if (digits == 0 || found == std::end(kUnits)) return std::nullopt;
  uint64_t number = 0;
  const auto error = std::from_chars(text.data(), text.data() + digits, number).ec;
  uint64_t bytes = 0;
  const uint64_t factor = kFactors[found - std::begin(kUnits)];
  if (error != std::errc() || __builtin_mul_overflow(number, factor, &bytes)) {
    *overflow = true;
    return std::nullopt;
  }
  return bytes;
}

// "a.b.c.d[/n]" or an IPv6 address with an optional "/n".
bool IsCidr(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  unsigned char buffer[16];
  int max_prefix = 0;
  if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
    max_prefix = 128;
  } else {
    return false;
  }
  if (slash == std::string::npos) return true;
  const std::string_view prefix = std::string_view(text).substr(slash + 1);
  const auto bits = Digits(prefix);
  return bits && prefix.size() <= 3 && *bits <= static_cast<uint64_t>(max_prefix);
}

// "HH:MM" as minutes of the day; "24:00" only when `until`.
std::optional<int> ParseClock(std::string_view text, bool until) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  const auto hours = Digits(text.substr(0, 2));
  const auto minutes = Digits(text.substr(3, 2));
  if (!hours || !minutes || *minutes > 59) return std::nullopt;
  const int value = static_cast<int>(*hours * 60 + *minutes);
  if (value < 1440 || (until && value == 1440)) return value;
  return std::nullopt;
}

// "+01:00", "-05:30", "UTC", "Z": minutes east of UTC.
std::optional<int> ParseOffset(std::string_view text) {
  if (text == "UTC" || text == "Z") return 0;
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-') || text[3] != ':') {
    return std::nullopt;
  }
  const auto hours = Digits(text.substr(1, 2));
  const auto minutes = Digits(text.substr(4, 2));
  if (!hours || !minutes || *minutes > 59) return std::nullopt;
  const int value = static_cast<int>(*hours * 60 + *minutes);
  if (value > 14 * 60) return std::nullopt;
  return text[0] == '-' ? -value : value;
}

std::optional<uint8_t> ParseDays(const YAML::Node& node) {
  static constexpr std::string_view kNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  if (node.IsScalar()) {
    const std::string word = node.Scalar();
    if (word == "weekdays") return 0x1f;
    if (word == "weekend") return 0x60;
    if (word == "daily") return 0x7f;
    return std::nullopt;
  }
  if (!node.IsSequence() || node.size() == 0) return std::nullopt;
  uint8_t days = 0;
  for (const auto& item : node) {
    if (!item.IsScalar()) return std::nullopt;
    const auto* name = std::find(std::begin(kNames), std::end(kNames), item.Scalar());
    if (name == std::end(kNames)) return std::nullopt;
    days |= static_cast<uint8_t>(1u << (name - std::begin(kNames)));
  }
  return days;
}

Status Fail(const std::string& path, const std::string& why) {
  return Status(Code::kInvalidArgument, "tenant policy: field '" + path + "' " + why);
}

// Typed readers of one field's value, refusing it by its path.
Result<uint64_t> Integer(const YAML::Node& node, const std::string& path, uint64_t min,
                         uint64_t max) {
  const std::string range = "from " + std::to_string(min) + " to " + std::to_string(max);
  if (!PlainOr(node, "tag:yaml.org,2002:int")) {
    return Error(Fail(path, "must be an integer " + range));
  }
  const auto value = Digits(node.Scalar());
  if (value && *value >= min && *value <= max) return *value;
  const std::string& text = node.Scalar();
  const bool numeric = !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
  return Error(Fail(path, numeric ? "must be " + range : "must be an integer " + range));
}

Result<bool> Bool(const YAML::Node& node, const std::string& path) {
  if (PlainOr(node, "tag:yaml.org,2002:bool")) {
    const std::string& text = node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  return Error(Fail(path, "must be true or false"));
}

Result<std::string> String(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    return Error(Fail(path, "must be a non-empty string"));
  }
  return node.Scalar();
}

Result<std::vector<std::string>> Strings(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) return Error(Fail(path, "must be a list of strings"));
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) {
    ASSIGN_OR_RETURN(std::string item, String(node[i], Item(path, i)));
    out.push_back(std::move(item));
  }
  return out;
}

Result<double> Number(const YAML::Node& node, const std::string& path) {
  double value = -1;
  if (PlainOr(node, "tag:yaml.org,2002:float") || PlainOr(node, "tag:yaml.org,2002:int")) {
    const std::string& text = node.Scalar();
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) value = -1;
  }
  if (!std::isfinite(value) || value < 0) return Error(Fail(path, "must be a number, 0 or more"));
  return value;
}

// Refuses a key of `map` twice, or one not in `known`.
Status OnlyKeys(const YAML::Node& map, const std::string& path,
                std::initializer_list<std::string_view> known, std::string_view what) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return Fail(path + "." + key, "is not " + std::string(what));
    }
    if (!seen.insert(key).second) return Fail(path + "." + key, "appears twice");
  }
  return OkStatus();
}

Result<uint64_t> Size(const YAML::Node& node, const std::string& path) {
  bool overflow = false;
  const auto bytes = node.IsScalar() ? ParseSize(node.Scalar(), &overflow) : std::nullopt;
  if (bytes) return *bytes;
  if (overflow) return Error(Fail(path, "is too large (more than 2^64 - 1 bytes)"));
  return Error(Fail(path,
                    "must be a size: an integer of bytes, or with a unit B, KB, MB, GB, TB "
                    "(1000-based) or KiB, MiB, GiB, TiB (1024-based), e.g. \"100GB\""));
}

// Reads the document's fields into a policy and its notes; the first problem
// ends the reading.
class PolicyReader {
 public:
  using Read = std::function<Status(const YAML::Node&, const std::string&)>;
  struct Field {
    std::string_view name;
    Read read;
  };

  explicit PolicyReader(std::string_view tenant) : tenant_(tenant) {}

  Status Document(const YAML::Node& root);
  ParsedTenantPolicy Take() { return std::move(parsed_); }

 private:
  TenantPolicy& policy() { return parsed_.policy; }

  void Note(const std::string& path, PolicyNoteKind kind, std::string_view why) {
    parsed_.notes.push_back({path, kind, std::string(why)});
  }
  // A field read for its type, then reported as `kind`.
  Read Noted(Read read, PolicyNoteKind kind, std::string_view why) {
    return [this, read = std::move(read), kind, why](const YAML::Node& node,
                                                     const std::string& path) -> Status {
      RETURN_IF_ERROR(read(node, path));
      Note(path, kind, why);
      return OkStatus();
    };
  }

  Status Walk(const YAML::Node& map, const std::string& path, const std::vector<Field>& fields);

  // Field readers storing into `out`.
  template <typename T>
  static Read Into(std::optional<T>& out, uint64_t min, uint64_t max) {
    return [&out, min, max](const YAML::Node& node, const std::string& path) -> Status {
      ASSIGN_OR_RETURN(const uint64_t value, Integer(node, path, min, max));
      out = static_cast<T>(value);
      return OkStatus();
    };
  }
  static Read Into(bool& out) {
    return [&out](const YAML::Node& node, const std::string& path) -> Status {
      ASSIGN_OR_RETURN(out, Bool(node, path));
      return OkStatus();
    };
  }
  // A field only checked for its type (`check` is Bool, String, Strings...).
  template <typename T>
  static Read Checked(Result<T> (*check)(const YAML::Node&, const std::string&)) {
    return [check](const YAML::Node& node, const std::string& path) {
      return StatusOf(check(node, path));
    };
  }
  static Read SizeInto(std::optional<uint64_t>* out) {
    return [out](const YAML::Node& node, const std::string& path) -> Status {
      ASSIGN_OR_RETURN(const uint64_t value, Size(node, path));
      if (out != nullptr) *out = value;
      return OkStatus();
    };
  }
  Read Section(Status (PolicyReader::*read)(const YAML::Node&, const std::string&)) {
    return [this, read](const YAML::Node& node, const std::string& path) {
      return (this->*read)(node, path);
    };
  }

  Status TenantId(const YAML::Node& node, const std::string& path);
  Status Security(const YAML::Node& node, const std::string& path);
  Status DataProtection(const YAML::Node& node, const std::string& path);
  Status AccessControl(const YAML::Node& node, const std::string& path);
  Status IpWhitelist(const YAML::Node& node, const std::string& path);
  Status AllowedPeers(const YAML::Node& node, const std::string& path);
  Status IdList(const YAML::Node& node, const std::string& path, std::set<uint64_t>& out);
  Status TimeWindows(const YAML::Node& node, const std::string& path);
  Result<TimeWindow> OneWindow(const YAML::Node& node, const std::string& path);
  Status AuditLogging(const YAML::Node& node, const std::string& path);
  Status Compliance(const YAML::Node& node, const std::string& path);
  Status RateLimiting(const YAML::Node& node, const std::string& path);
  Status Quotas(const YAML::Node& node, const std::string& path);
  Status Compute(const YAML::Node& node, const std::string& path);
  Status Storage(const YAML::Node& node, const std::string& path);
  Status Api(const YAML::Node& node, const std::string& path);
  Status Cost(const YAML::Node& node, const std::string& path);
  Status Domains(const YAML::Node& node, const std::string& path);
  Status Keys(const YAML::Node& node, const std::string& path);
  Status MergeRates();

  std::string tenant_;
  ParsedTenantPolicy parsed_;
  RateLimits security_rate_;  // security_policies.rate_limiting
  RateLimits api_rate_;       // resource_quotas.api
};

// Each key of `map` once, in document order: a known field is read, an
// unknown one noted.
Status PolicyReader::Walk(const YAML::Node& map, const std::string& path,
                          const std::vector<Field>& fields) {
  if (!map.IsMap()) return Fail(path, "must be a map");
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) return Fail(path, "has a key that is not a string");
    const std::string key = entry.first.Scalar();
    const std::string field = path + "." + key;
    if (!seen.insert(key).second) return Fail(field, "appears twice");
    const auto known =
        std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == key; });
    if (known == fields.end()) {
      Note(field, PolicyNoteKind::kUnknown, kUnknownWhy);
    } else {
      RETURN_IF_ERROR(known->read(entry.second, field));
    }
  }
  return OkStatus();
}

Status PolicyReader::Document(const YAML::Node& root) {
  if (!root.IsMap()) {
    return Status(Code::kInvalidArgument,
                  "tenant policy: the top level must be a map of security_policies and/or "
                  "resource_quotas");
  }
  bool security = false;
  bool quotas = false;
  for (const auto& entry : root) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "(not a string)";
    bool* seen = key == "security_policies" ? &security
                 : key == "resource_quotas" ? &quotas
                                            : nullptr;
    if (seen == nullptr) {
      return Fail(key,
                  "is not a tenant policy section: only security_policies and resource_quotas "
                  "may be at the top level");
    }
    if (*seen) return Fail(key, "appears twice");
    *seen = true;
    RETURN_IF_ERROR(seen == &security ? Security(entry.second, key) : Quotas(entry.second, key));
  }
  if (!security && !quotas) {
    return Status(Code::kInvalidArgument,
                  "tenant policy: the document has neither security_policies nor resource_quotas");
  }
  return MergeRates();
}

Status PolicyReader::TenantId(const YAML::Node& node, const std::string& path) {
  ASSIGN_OR_RETURN(const std::string named, String(node, path));
  if (named != tenant_) {
    return Fail(path, "must be '" + tenant_ + "', the tenant the policy is put for");
  }
  return OkStatus();
}

Status PolicyReader::Security(const YAML::Node& node, const std::string& path) {
  return Walk(node, path,
              {{"tenant_id", Section(&PolicyReader::TenantId)},
               {"version", Noted(Checked(&String), PolicyNoteKind::kNotApplicable,
                                 "kept as written; kmsd versions the stored document by time")},
               {"data_protection", Section(&PolicyReader::DataProtection)},
               {"access_control", Section(&PolicyReader::AccessControl)},
               {"audit_logging", Section(&PolicyReader::AuditLogging)},
               {"compliance", Section(&PolicyReader::Compliance)},
               {"rate_limiting", Section(&PolicyReader::RateLimiting)}});
}

Status PolicyReader::DataProtection(const YAML::Node& node, const std::string& path) {
  auto level = [](const YAML::Node& value, const std::string& field) -> Status {
    ASSIGN_OR_RETURN(const std::string text, String(value, field));
    if (text != "AES-256") {
      return Fail(field, "must be \"AES-256\": kmsd's keys are AES-256 and nothing else");
    }
    return OkStatus();
  };
  return Walk(
      node, path,
      {{"encryption_level", level},
       {"key_rotation_days", Into(policy().key_rotation_days, 1, 3650)},
       {"data_locality", Noted(Checked(&Strings), PolicyNoteKind::kNotApplicable, kNoRegions)},
       {"cross_region_encryption",
        Noted(Checked(&Bool), PolicyNoteKind::kNotApplicable, kNoRegions)}});
}

Status PolicyReader::AccessControl(const YAML::Node& node, const std::string& path) {
  return Walk(node, path,
              {{"max_concurrent_sessions", Into(policy().max_concurrent_sessions, 1, 100000)},
               {"session_timeout_minutes", Into(policy().session_timeout_minutes, 1, 525600)},
               {"ip_whitelist", Section(&PolicyReader::IpWhitelist)},
               {"mfa_required", Into(policy().mfa_required)},
               {"allowed_peers", Section(&PolicyReader::AllowedPeers)},
               {"time_windows", Section(&PolicyReader::TimeWindows)}});
}

Status PolicyReader::IpWhitelist(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) return Fail(path, "must be a list of CIDRs");
  std::vector<std::string> cidrs;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item = Item(path, i);
    ASSIGN_OR_RETURN(std::string cidr, String(node[i], item));
    if (!IsCidr(cidr)) {
      return Fail(item, "must be an IPv4 or IPv6 address with an optional /prefix length");
    }
    cidrs.push_back(std::move(cidr));
  }
  policy().ip_whitelist = std::move(cidrs);
  Note(path, PolicyNoteKind::kNotApplicable,
       "applies to network front ends only; the IPC socket has no addresses");
  return OkStatus();
}

Status PolicyReader::IdList(const YAML::Node& node, const std::string& path,
                            std::set<uint64_t>& out) {
  if (!node.IsSequence()) return Fail(path, "must be a list of numeric ids");
  for (size_t i = 0; i < node.size(); ++i) {
    ASSIGN_OR_RETURN(const uint64_t id, Integer(node[i], Item(path, i), 0, kMaxId));
    out.insert(id);
  }
  return OkStatus();
}

Status PolicyReader::AllowedPeers(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return Fail(path, "must be a map of uids and/or gids");
  RETURN_IF_ERROR(OnlyKeys(node, path, {"uids", "gids"}, "uids or gids"));
  PeerSet peers;
  if (node["uids"]) RETURN_IF_ERROR(IdList(node["uids"], path + ".uids", peers.uids));
  if (node["gids"]) RETURN_IF_ERROR(IdList(node["gids"], path + ".gids", peers.gids));
  if (peers.empty()) return Fail(path, "must list at least one uid or gid");
  policy().allowed_peers = std::move(peers);
  return OkStatus();
}

Status PolicyReader::TimeWindows(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence()) return Fail(path, "must be a list of time windows");
  std::vector<TimeWindow> windows;
  for (size_t i = 0; i < node.size(); ++i) {
    ASSIGN_OR_RETURN(TimeWindow window, OneWindow(node[i], Item(path, i)));
    windows.push_back(window);
  }
  policy().time_windows = std::move(windows);
  return OkStatus();
}

Result<TimeWindow> PolicyReader::OneWindow(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return Error(Fail(path, "must be a map of days, from, until, utc_offset"));
  RETURN_IF_ERROR(OnlyKeys(node, path, {"days", "from", "until", "utc_offset"},
                           "days, from, until or utc_offset"));
  for (const char* required : {"days", "from", "until"}) {
    if (!node[required]) return Error(Fail(path + "." + required, "is required"));
  }
  TimeWindow window;
  const auto days = ParseDays(node["days"]);
  if (!days) {
    return Error(Fail(path + ".days",
                      "must be a list of mon, tue, wed, thu, fri, sat, sun, or one of "
                      "weekdays, weekend, daily"));
  }
  window.days = *days;
  ASSIGN_OR_RETURN(const std::string from, String(node["from"], path + ".from"));
  ASSIGN_OR_RETURN(const std::string until, String(node["until"], path + ".until"));
  const auto from_minute = ParseClock(from, false);
  const auto until_minute = ParseClock(until, true);
  if (!from_minute) return Error(Fail(path + ".from", "must be a time \"HH:MM\", 00:00 to 23:59"));
  if (!until_minute) {
    return Error(Fail(path + ".until", "must be a time \"HH:MM\", 00:00 to 24:00"));
  }
  if (*from_minute == *until_minute) {
    return Error(Fail(path + ".until", "must differ from from"));
  }
  window.from_minute = *from_minute;
  window.until_minute = *until_minute == 0 ? 1440 : *until_minute;  // "00:00": midnight after
  if (const YAML::Node offset = node["utc_offset"]) {
    ASSIGN_OR_RETURN(const std::string text, String(offset, path + ".utc_offset"));
    const auto minutes = ParseOffset(text);
    if (!minutes) {
      return Error(
          Fail(path + ".utc_offset",
               "must be \"+HH:MM\" or \"-HH:MM\" within 14:00 of UTC, or \"UTC\" or \"Z\""));
    }
    window.utc_offset_minutes = *minutes;
  }
  return window;
}

Status PolicyReader::AuditLogging(const YAML::Node& node, const std::string& path) {
  constexpr auto kind = PolicyNoteKind::kServedElsewhere;
  TenantPolicy& p = policy();
  return Walk(
      node, path,
      {{"log_all_operations", Noted(Into(p.log_all_operations), kind, kAudit)},
       {"log_data_access", Noted(Into(p.log_data_access), kind, kAudit)},
       {"log_admin_actions", Noted(Into(p.log_admin_actions), kind, kAudit)},
       {"retention_days", Noted(Into(p.audit_retention_days, 1, 36500), kind, kRetention)}});
}

Status PolicyReader::Compliance(const YAML::Node& node, const std::string& path) {
  constexpr auto kind = PolicyNoteKind::kNotApplicable;
  return Walk(node, path,
              {{"frameworks", Noted(Checked(&Strings), kind, kLabel)},
               {"data_classification", Noted(Checked(&String), kind, kLabel)},
               {"pii_handling", Noted(Checked(&String), kind, kLabel)}});
}

Status PolicyReader::RateLimiting(const YAML::Node& node, const std::string& path) {
  return Walk(
      node, path,
      {{"requests_per_minute", Into(security_rate_.per_minute, 1, kMaxRate)},
       {"requests_per_hour", Into(security_rate_.per_hour, 1, kMaxRate)},
       {"burst_size", Into(security_rate_.burst, 1, kMaxRate)},
       {"cost_threshold", Noted(Checked(&Number), PolicyNoteKind::kNotApplicable, kNoCosts)}});
}

Status PolicyReader::Quotas(const YAML::Node& node, const std::string& path) {
  return Walk(node, path,
              {{"tenant_id", Section(&PolicyReader::TenantId)},
               {"compute", Section(&PolicyReader::Compute)},
               {"storage", Section(&PolicyReader::Storage)},
               {"api", Section(&PolicyReader::Api)},
               {"cost", Section(&PolicyReader::Cost)},
               {"domains", Section(&PolicyReader::Domains)},
               {"keys", Section(&PolicyReader::Keys)}});
}

Status PolicyReader::Compute(const YAML::Node& node, const std::string& path) {
  constexpr auto kind = PolicyNoteKind::kNotApplicable;
  std::optional<uint64_t> ignored;
  return Walk(
      node, path,
      {{"max_concurrent_requests", Into(policy().max_concurrent_requests, 1, 100000)},
       {"max_request_duration",
        Noted(Into(ignored, 1, kMaxCount), kind,
              "a request runs to its end in milliseconds and is never cut short; the daemon's "
              "own limits (workers, queues) bound the work")},
       {"max_memory_usage",
        Noted(SizeInto(nullptr), kind,
              "kmsd's memory is shared by all tenants and bounded by the daemon's own limits")}});
}

Status PolicyReader::Storage(const YAML::Node& node, const std::string& path) {
  constexpr auto kind = PolicyNoteKind::kServedElsewhere;
  TenantPolicy& p = policy();
  return Walk(node, path,
              {{"max_data_size", Noted(SizeInto(&p.max_data_size), kind, kStorage)},
               {"max_file_count", Noted(Into(p.max_file_count, 0, kMaxCount), kind, kStorage)},
               {"max_file_size", Noted(SizeInto(&p.max_file_size), kind, kStorage)}});
}

Status PolicyReader::Api(const YAML::Node& node, const std::string& path) {
  return Walk(node, path,
              {{"requests_per_minute", Into(api_rate_.per_minute, 1, kMaxRate)},
               {"requests_per_hour", Into(api_rate_.per_hour, 1, kMaxRate)},
               {"requests_per_day", Into(api_rate_.per_day, 1, kMaxRate)}});
}

Status PolicyReader::Cost(const YAML::Node& node, const std::string& path) {
  constexpr auto kind = PolicyNoteKind::kNotApplicable;
  return Walk(node, path,
              {{"monthly_budget", Noted(Checked(&Number), kind, kNoCosts)},
               {"daily_limit", Noted(Checked(&Number), kind, kNoCosts)},
               {"cost_alert_threshold", Noted(Checked(&Number), kind, kNoCosts)}});
}

Status PolicyReader::Domains(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return Fail(path, "must be a map of domain names to true or false");
  std::set<std::string> seen;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) return Fail(path, "has a key that is not a string");
    const std::string field = path + "." + entry.first.Scalar();
    if (!seen.insert(entry.first.Scalar()).second) return Fail(field, "appears twice");
    RETURN_IF_ERROR(StatusOf(Bool(entry.second, field)));
  }
  Note(path, PolicyNoteKind::kNotApplicable,
       "labels of business domains; kmsd has nothing to turn on or off by them");
  return OkStatus();
}

Status PolicyReader::Keys(const YAML::Node& node, const std::string& path) {
  return Walk(node, path,
              {{"max_keys", Into(policy().max_keys, 1, 1000000)},
               {"max_data_keys_per_day", Into(policy().max_data_keys_per_day, 1, kMaxRate)}});
}

// The stricter of rate_limiting and api where both name a limit.
Status PolicyReader::MergeRates() {
  auto stricter = [](std::optional<uint64_t> a, std::optional<uint64_t> b) {
    if (a && b) return std::optional<uint64_t>(std::min(*a, *b));
    return a ? a : b;
  };
  RateLimits& rate = policy().rate;
  rate.per_minute = stricter(security_rate_.per_minute, api_rate_.per_minute);
  rate.per_hour = stricter(security_rate_.per_hour, api_rate_.per_hour);
  rate.per_day = api_rate_.per_day;
  rate.burst = security_rate_.burst;
  if (rate.burst && !rate.per_minute) {
    return Fail("security_policies.rate_limiting.burst_size",
                "needs requests_per_minute (the rate its bucket refills at)");
  }
  return OkStatus();
}

Result<YAML::Node> LoadOne(std::string_view yaml) {
  const std::string text(yaml);
  {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    Prescan prescan;
    try {
      // At most two: yaml-cpp 0.7 finds empty documents without end in
      // some garbage (",").
      while (prescan.documents() < 2 && parser.HandleNextDocument(prescan)) {
      }
    } catch (const Prescan::Refusal& refusal) {
      return Error(Code::kInvalidArgument, "tenant policy: " + refusal.why);
    }
    if (prescan.documents() == 0) {
      return Error(Code::kInvalidArgument, "tenant policy: the document is empty");
    }
    if (prescan.documents() > 1) {
      return Error(Code::kInvalidArgument,
                   "tenant policy: holds more than one YAML document; put both sections in one");
    }
  }
  YAML::Node root = YAML::Load(text);
  if (root.IsNull()) return Error(Code::kInvalidArgument, "tenant policy: the document is empty");
  return root;
}

}  // namespace

std::string_view PolicyNoteKindName(PolicyNoteKind kind) {
  switch (kind) {
    case PolicyNoteKind::kUnknown:
      return "unknown";
    case PolicyNoteKind::kNotApplicable:
      return "not_applicable";
    case PolicyNoteKind::kServedElsewhere:
      return "served_elsewhere";
  }
  return "unknown";
}

Result<ParsedTenantPolicy> ParseTenantPolicy(std::string_view yaml, std::string_view tenant) {
  if (yaml.size() > kMaxPolicyDocumentBytes) {
    return Error(Code::kInvalidArgument,
                 "tenant policy: the document is " + std::to_string(yaml.size()) +
                     " bytes, over the limit of " + std::to_string(kMaxPolicyDocumentBytes));
  }
  // The document is shown as it is (kmsctl tenant policy get): no terminal
  // control sequences, C0 (but tab and line ends), DEL or C1 (as UTF-8).
  for (size_t i = 0; i < yaml.size(); ++i) {
    const auto c = static_cast<unsigned char>(yaml[i]);
    const bool c1 = c == 0xc2 && i + 1 < yaml.size() &&
                    static_cast<unsigned char>(yaml[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(yaml[i + 1]) <= 0x9f;
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f || c1) {
      return Error(Code::kInvalidArgument, "tenant policy: a control character at byte " +
                                               std::to_string(i) + " (only tab and line ends)");
    }
  }
  try {
    ASSIGN_OR_RETURN(const YAML::Node root, LoadOne(yaml));
    PolicyReader reader(tenant);
    RETURN_IF_ERROR(reader.Document(root));
    return reader.Take();
  } catch (const YAML::Exception& e) {
    return Error(Code::kInvalidArgument, std::string("tenant policy: not valid YAML: ") + e.what());
  } catch (const std::exception& e) {
    return Error(Code::kInternal, std::string("tenant policy: ") + e.what());
  }
}

}  // namespace kmsd
