// kmsctl audit report (docs/CLI.md, "Audit"): the seeds' SOX report for one
// tenant and one month, built here from kmsd's answers: the period's export
// (verified: its chain here, its seals by kmsd), the tenant's keys and
// versions, principals, custom roles, grants and policy. Printed as text,
// as JSON (--json), and as a self-contained HTML page (--html FILE: no
// network, an inline SVG chart of requests and denials per day).
#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>

#include "protocol/access_types.h"
#include "protocol/audit_entry.h"
#include "protocol/policy_types.h"
#include "tools/kmsctl/audit_export.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

struct ReportArgs {
  std::string tenant;
  std::string period;
  std::string html;
};

// Who made a request: its principal, or the peer (an admin, or a peer refused
// before it was known).
std::string Who(const Json& entry) {
  if (const auto p = entry.find("principal"); p != entry.end() && p->is_object()) {
    return TextField(*p, "name");
  }
  const auto caller = entry.find("caller");
  if (caller != entry.end() && caller->is_object() && caller->contains("uid") &&
      (*caller)["uid"].is_number_unsigned()) {
    return "uid " + std::to_string((*caller)["uid"].get<uint64_t>());
  }
  return "unknown caller";
}

// Requests by principal and op, denials, lockouts and the daily series.
Json Requests(const std::vector<std::string>& lines, const std::string& since) {
  std::map<std::string, std::map<std::string, uint64_t>> by_op;
  std::map<std::string, uint64_t> denied_by, daily_requests, daily_denied;
  uint64_t total = 0, denied = 0, lockouts = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const Json line = Json::parse(lines[i], nullptr, false);
    if (!line.is_object() || !line.contains("entry")) continue;
    const Json entry = Json::parse(line["entry"].get<std::string>(), nullptr, false);
    if (!entry.is_object() || TextField(entry, "type") != "request") continue;
    const std::string who = Who(entry);
    const std::string day = TextField(entry, "time").substr(0, 10);
    ++total;
    ++by_op[who][TextField(entry, "op")];
    ++daily_requests[day];
    if (TextField(entry, "outcome") == "ACCESS_DENIED") {
      ++denied;
      ++denied_by[who];
      ++daily_denied[day];
      if (TextField(entry, "message").find("is locked out") != std::string::npos) ++lockouts;
    }
  }
  Json principals = Json::array();
  for (const auto& [who, ops] : by_op) {
    uint64_t count = 0;
    for (const auto& [op, n] : ops) count += n;
    principals.push_back(
        {{"principal", who}, {"requests", count}, {"denied", denied_by[who]}, {"by_op", ops}});
  }
  // Every day of the month, also the quiet ones.
  Json daily = Json::array();
  const std::string month = since.substr(0, 8);
  for (int d = 1; d <= 31; ++d) {
    char day[11];
    std::snprintf(day, sizeof day, "%s%02d", month.c_str(), d);
    if (!audit::ParseRfc3339Micros(std::string(day) + "T00:00:00.000000Z")) break;
    if (d > 28 && std::string(day).substr(0, 7) != since.substr(0, 7)) break;
    daily.push_back(
        {{"day", day}, {"requests", daily_requests[day]}, {"denied", daily_denied[day]}});
  }
  return {{"total", total},
          {"denied", denied},
          {"lockouts", lockouts},
          {"by_principal", principals},
          {"daily", daily}};
}

// The policy's key_rotation_days, read from the document as put.
std::optional<int64_t> RotationDays(const std::optional<std::string>& document) {
  if (!document) return std::nullopt;
  static const std::regex kField(R"(key_rotation_days:\s*([0-9]+))");
  std::smatch match;
  if (!std::regex_search(*document, match, kField)) return std::nullopt;
  return std::stoll(match[1].str());
}

std::string Date(int64_t unix_seconds) {
  return audit::Rfc3339Micros(unix_seconds * 1'000'000'000).substr(0, 19) + "Z";
}

// Keys whose versions were made further apart than the limit (their own
// period or the policy's, the shorter), where that overlaps the period.
Result<Json> LateRotations(Invocation& invocation, const std::string& tenant,
                           std::optional<int64_t> policy_days, int64_t since, int64_t until) {
  ASSIGN_OR_RETURN(Reply keys_reply, invocation.Send<ops::KeyList>(tenant, {}));
  ASSIGN_OR_RETURN(ops::KeyListReply keys,
                   FromReply(Decode<ops::KeyListReply>(keys_reply.result())));
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  Json late = Json::array();
  for (const ops::KeyDescription& key : keys.keys) {
    std::optional<int64_t> limit = key.rotation_period_seconds;
    if (policy_days) limit = std::min(limit.value_or(INT64_MAX), *policy_days * 86400);
    if (!limit) continue;
    ASSIGN_OR_RETURN(Reply versions_reply,
                     invocation.Send<ops::KeyListVersions>(tenant, {.key = key.name}));
    ASSIGN_OR_RETURN(ops::VersionListReply versions,
                     FromReply(Decode<ops::VersionListReply>(versions_reply.result())));
    std::sort(versions.versions.begin(), versions.versions.end(),
              [](const auto& a, const auto& b) { return a.version < b.version; });
    for (size_t i = 0; i < versions.versions.size(); ++i) {
      const int64_t made = versions.versions[i].created_at;
      const bool newest = i + 1 == versions.versions.size();
      const int64_t replaced = newest ? std::min(now, until) : versions.versions[i + 1].created_at;
      const int64_t due = made + *limit;
      if (replaced <= due || replaced < since || due > until) continue;
      late.push_back({{"key", key.name},
                      {"version", versions.versions[i].version},
                      {"due", Date(due)},
                      {"rotated", newest ? std::string("not yet") : Date(replaced)}});
    }
  }
  return late;
}

bool Manages(std::string_view permission) {
  return permission == "key:manage" || permission == "key:rotate" || permission == "key:delete" ||
         permission == "key:create";
}
bool Uses(std::string_view permission) { return permission.starts_with("crypto:"); }

// Principals that may both manage and use one key: by their roles
// everywhere, or by their roles and a grant on the key.
Result<Json> Segregation(Invocation& invocation, const std::string& tenant,
                         const ops::GrantListReply& grants) {
  ASSIGN_OR_RETURN(Reply principals_reply, invocation.Send<ops::PrincipalList>(tenant, {}));
  ASSIGN_OR_RETURN(ops::PrincipalListReply principals,
                   FromReply(Decode<ops::PrincipalListReply>(principals_reply.result())));
  ASSIGN_OR_RETURN(Reply roles_reply, invocation.Send<ops::RoleList>(tenant, {}));
  ASSIGN_OR_RETURN(ops::RoleListReply roles,
                   FromReply(Decode<ops::RoleListReply>(roles_reply.result())));
  std::map<std::string, std::pair<bool, bool>> custom;  // manages, uses
  for (const ops::RoleDescription& role : roles.roles) {
    for (const std::string& p : role.permissions) {
      custom[role.name].first |= Manages(p);
      custom[role.name].second |= Uses(p);
    }
  }
  Json conflicts = Json::array();
  for (const ops::PrincipalDescription& principal : principals.principals) {
    bool manages = false, uses = false;
    for (const std::string& role : principal.roles) {
      manages |= role == "manager" || custom[role].first;
      uses |= role == "user" || custom[role].second;
    }
    std::set<std::string> granted;
    for (const ops::GrantDescription& grant : grants.grants) {
      if (grant.principal != principal.name || grant.state != "active") continue;
      for (const std::string& op : grant.operations) {
        if (op != "describe-key") granted.insert(grant.key_name);
      }
    }
    if (manages && uses) {
      conflicts.push_back(
          {{"principal", principal.name}, {"roles", principal.roles}, {"keys", "every key"}});
    } else if (manages && !granted.empty()) {
      conflicts.push_back(
          {{"principal", principal.name}, {"roles", principal.roles}, {"keys", granted}});
    }
  }
  return conflicts;
}

}  // namespace

// The HTML page (audit_report_html.cc).
std::string ReportHtml(const Json& report);

namespace {

std::string ReportText(const Json& r) {
  std::string out = "audit report: tenant " + Output::Printable(TextField(r, "tenant")) + ", " +
                    TextField(r, "period") + "\n";
  const Json& log = r["log"];
  out += log["verified"].get<bool>()
             ? "log: verified (" + std::to_string(log["entries"].get<uint64_t>()) + " entries, " +
                   std::to_string(log["seals"].get<uint64_t>()) + " seals)\n"
             : "log: DOES NOT VERIFY: " + Output::Printable(TextField(log, "problem")) + "\n";
  const Json& q = r["requests"];
  out += "requests: " + std::to_string(q["total"].get<uint64_t>()) + ", denied " +
         std::to_string(q["denied"].get<uint64_t>()) + ", lockouts " +
         std::to_string(q["lockouts"].get<uint64_t>()) + "\n";
  for (const Json& p : q["by_principal"]) {
    out += "  " + Output::Printable(TextField(p, "principal")) + ": " +
           std::to_string(p["requests"].get<uint64_t>()) + " requests, " +
           std::to_string(p["denied"].get<uint64_t>()) + " denied;";
    for (const auto& [op, n] : p["by_op"].items()) {
      out += " " + op + " " + std::to_string(n.get<uint64_t>());
    }
    out += "\n";
  }
  out += "keys rotated late: " + std::to_string(r["late_rotations"].size()) + "\n";
  for (const Json& k : r["late_rotations"]) {
    out += "  " + Output::Printable(TextField(k, "key")) + " version " +
           std::to_string(k["version"].get<uint64_t>()) + ": due " + TextField(k, "due") +
           ", rotated " + TextField(k, "rotated") + "\n";
  }
  out += "principals that may manage and use one key: " + std::to_string(r["segregation"].size()) +
         "\n";
  for (const Json& c : r["segregation"]) {
    out += "  " + Output::Printable(TextField(c, "principal")) + ": " + c["keys"].dump() + "\n";
  }
  out += "grants in force: " + std::to_string(r["grants"].size()) + "\n";
  for (const Json& g : r["grants"]) {
    out += "  " + TextField(g, "id") + ": " + Output::Printable(TextField(g, "principal")) +
           " on " + Output::Printable(TextField(g, "key")) + " (" + g["operations"].dump() + ")\n";
  }
  return out;
}

Status AuditReport(Invocation& invocation, const ReportArgs& a) {
  ASSIGN_OR_RETURN(auto period, invocation.AsUsage(MonthPeriod(a.period)));
  if (!a.html.empty()) RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.html)));
  const auto& [since, until] = period;
  ASSIGN_OR_RETURN(std::vector<std::string> lines, FetchExport(invocation, a.tenant, since, until));
  ExportCheck check = WalkExport(lines);
  Json log = {{"entries", check.entries}, {"seals", check.seals.size()}};
  if (!check.problem) {
    ASSIGN_OR_RETURN(ops::AuditVerifyReply sealed, CheckSeals(invocation, a.tenant, check.seals));
    if (!sealed.verified) check.problem = sealed.problem.value_or("a seal does not verify");
  }
  log["verified"] = !check.problem.has_value();
  if (check.problem) log["problem"] = *check.problem;

  ASSIGN_OR_RETURN(Reply policy_reply, invocation.Send<ops::TenantGetPolicy>(a.tenant, {}));
  ASSIGN_OR_RETURN(ops::PolicyDescription policy,
                   FromReply(Decode<ops::PolicyDescription>(policy_reply.result())));
  const std::optional<int64_t> days = RotationDays(policy.document);
  const int64_t since_s = *audit::ParseRfc3339Micros(since) / 1'000'000'000;
  const int64_t until_s = *audit::ParseRfc3339Micros(until) / 1'000'000'000;
  ASSIGN_OR_RETURN(Json late, LateRotations(invocation, a.tenant, days, since_s, until_s));
  ASSIGN_OR_RETURN(Reply grants_reply,
                   invocation.Send<ops::GrantList>(a.tenant, {.key = {}, .principal = {}}));
  ASSIGN_OR_RETURN(ops::GrantListReply grants,
                   FromReply(Decode<ops::GrantListReply>(grants_reply.result())));
  ASSIGN_OR_RETURN(Json segregation, Segregation(invocation, a.tenant, grants));
  Json in_force = Json::array();
  for (const ops::GrantDescription& grant : grants.grants) {
    if (grant.state != "active") continue;
    in_force.push_back({{"id", grant.id},
                        {"principal", grant.principal},
                        {"key", grant.key_name},
                        {"operations", grant.operations}});
  }
  Json report = {{"tenant", a.tenant},
                 {"period", a.period},
                 {"since", since},
                 {"until", until},
                 {"log", log},
                 {"requests", Requests(lines, since)},
                 {"rotation_limit_days", days ? Json(*days) : Json(nullptr)},
                 {"late_rotations", late},
                 {"segregation", segregation},
                 {"grants", in_force}};
  if (!a.html.empty()) {
    const std::string page = ReportHtml(report);
    RETURN_IF_ERROR(
        WriteOutput(a.html, {reinterpret_cast<const uint8_t*>(page.data()), page.size()}));
  }
  if (invocation.output().json()) return invocation.output().Object(std::move(report));
  return Output::Stdout(ReportText(report));
}

}  // namespace

void AddAuditReportCommand(CLI::App* audit_group, Invocation& invocation) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* report = AddTenantCommand(
      audit_group, invocation, "report",
      "A month's compliance report: requests, denials, late rotations, segregation of duties, "
      "grants, and whether the period's log verifies",
      AuditReport, args);
  report->add_option("--period", args->period, "The month, such as 2026-10")->required();
  report->add_option("--html", args->html, "Also write a self-contained HTML page to FILE");
}

}  // namespace kmsd::kmsctl
