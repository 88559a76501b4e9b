// kmsctl audit verify (docs/CLI.md, "Audit"): asks kmsd to check its audit
// log, or a copy of one, against the token's seals and head. Exits 0 when it
// verifies, 5 (the data is bad) at the first problem, naming its file, line
// and entry.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "protocol/audit_types.h"
#include "tools/kmsctl/audit_export.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

struct VerifyArgs {
  std::string dir;
  std::string export_file;
};

struct ExportArgs {
  std::string tenant;
  std::string since;
  std::string until;
  std::string out = "-";
};

std::string Where(const ops::AuditVerifyReply& report) {
  std::string where;
  if (report.problem_file) where += "file " + Output::Printable(*report.problem_file);
  if (report.problem_line) where += " line " + std::to_string(*report.problem_line);
  if (report.problem_seq)
    where += (where.empty() ? "entry " : ", entry ") + std::to_string(*report.problem_seq);
  return where.empty() ? "" : where + ": ";
}

}  // namespace

// The export's seals, checked by kmsd with the token's key, a batch at a time.
Result<ops::AuditVerifyReply> CheckSeals(Invocation& invocation, const std::string& tenant,
                                         const std::vector<ops::AuditSeal>& seals) {
  constexpr size_t kPerRequest = 5000;
  ops::AuditVerifyReply total;
  total.verified = true;
  for (size_t at = 0; at < seals.size(); at += kPerRequest) {
    std::vector<ops::AuditSeal> batch(seals.begin() + at,
                                      seals.begin() + std::min(seals.size(), at + kPerRequest));
    ASSIGN_OR_RETURN(Reply reply,
                     invocation.Send<ops::AuditCheckSeals>(tenant, {.seals = std::move(batch)}));
    ASSIGN_OR_RETURN(ops::AuditVerifyReply part,
                     FromReply(Decode<ops::AuditVerifyReply>(reply.result())));
    total.seals += part.seals;
    if (!part.verified) return part;
  }
  return total;
}

namespace {

Status VerifyExport(Invocation& invocation, const std::string& path) {
  ASSIGN_OR_RETURN(SecretBuffer file, invocation.AsUsage(ReadInput(path)));
  const std::span<const uint8_t> bytes = file.RevealSpan();
  std::vector<std::string> lines;
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.emplace_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  const ExportCheck check = WalkExport(lines);
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidCiphertext,
                  "audit export " + Output::Printable(path) + " does not verify: " + why);
  };
  if (check.problem) {
    return bad("line " + std::to_string(check.problem_line) + ": " +
               Output::Printable(*check.problem));
  }
  ASSIGN_OR_RETURN(ops::AuditVerifyReply seals, CheckSeals(invocation, check.tenant, check.seals));
  if (!seals.verified) return bad(Output::Printable(seals.problem.value_or("")));
  if (invocation.output().json()) {
    return invocation.output().Object({{"verified", true},
                                       {"tenant", check.tenant},
                                       {"entries", check.entries},
                                       {"seals", check.seals.size()},
                                       {"first_seq", check.start_seq},
                                       {"last_seq", check.last_seq}});
  }
  return Output::Stdout(
      "audit export " + Output::Printable(path) + " verifies: " + std::to_string(check.entries) +
      " entries of tenant " + Output::Printable(check.tenant) + " (entries " +
      std::to_string(check.start_seq) + " to " + std::to_string(check.last_seq) + "), " +
      std::to_string(check.seals.size()) + " seals checked by the token\n");
}

Status AuditVerify(Invocation& invocation, const VerifyArgs& a) {
  if (!a.export_file.empty()) {
    if (!a.dir.empty()) {
      return invocation.AsUsage(Status(Code::kInvalidArgument, "give --dir or --export, not both"));
    }
    return VerifyExport(invocation, a.export_file);
  }
  std::string dir;
  if (!a.dir.empty()) {
    std::error_code error;
    dir = std::filesystem::absolute(a.dir, error).lexically_normal().string();
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (error)
      return invocation.AsUsage(Status(Code::kInvalidArgument, "--dir: " + error.message()));
  }
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::AuditVerify>("", {.dir = UnlessEmpty(dir)}));
  ASSIGN_OR_RETURN(ops::AuditVerifyReply report,
                   FromReply(Decode<ops::AuditVerifyReply>(reply.result())));
  const Status outcome =
      report.verified
          ? OkStatus()
          : Status(Code::kInvalidCiphertext, "audit log " + Output::Printable(report.dir) +
                                                 " does not verify: " + Where(report) +
                                                 Output::Printable(report.problem.value_or("")));
  if (invocation.output().json()) {
    RETURN_IF_ERROR(invocation.output().Object(ToJson(reply.result())));
    return report.verified ? OkStatus() : invocation.AlreadyReported(outcome);
  }
  if (!report.verified) return outcome;
  return Output::Stdout("audit log " + Output::Printable(report.dir) +
                        " verifies: " + std::to_string(report.entries) + " entries (" +
                        std::to_string(report.requests) + " requests) in " +
                        std::to_string(report.files) + " files, " + std::to_string(report.seals) +
                        " seals, sealed through entry " + std::to_string(report.sealed_through) +
                        ", the token's head at entry " + std::to_string(report.token_sealed) +
                        (report.unsealed > 0 ? "; " + std::to_string(report.unsealed) +
                                                   " entries after the last seal (not yet sealed)"
                                             : "") +
                        "\n");
}

Status AuditExport(Invocation& invocation, const ExportArgs& a) {
  std::string since, until;
  if (!a.since.empty()) {
    ASSIGN_OR_RETURN(since, invocation.AsUsage(CanonicalTime(a.since, false)));
  }
  if (!a.until.empty()) {
    ASSIGN_OR_RETURN(until, invocation.AsUsage(CanonicalTime(a.until, true)));
  }
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  ASSIGN_OR_RETURN(std::vector<std::string> lines, FetchExport(invocation, a.tenant, since, until));
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return WriteOutput(a.out, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

}  // namespace

Result<std::vector<std::string>> FetchExport(Invocation& invocation, const std::string& tenant,
                                             const std::string& since, const std::string& until) {
  std::vector<std::string> lines;
  std::optional<uint64_t> after;
  do {
    ASSIGN_OR_RETURN(Reply reply,
                     invocation.Send<ops::AuditExport>(tenant, {.since = UnlessEmpty(since),
                                                                .until = UnlessEmpty(until),
                                                                .after_seq = after,
                                                                .max_lines = std::nullopt}));
    ASSIGN_OR_RETURN(ops::AuditExportReply page,
                     FromReply(Decode<ops::AuditExportReply>(reply.result())));
    for (std::string& line : page.lines) lines.push_back(std::move(line));
    after = page.next_after_seq;
  } while (after);
  return lines;
}

void AddAuditCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("audit", "Check the audit log");
  group->require_subcommand(1);
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* verify = group->add_subcommand(
      "verify",
      "Check every entry, the chain, the seals and the token's head; exit 5 at the first problem");
  verify->add_option("--dir", args->dir,
                     "A copy of an audit log to check (default: kmsd's own); kmsd reads it");
  verify->add_option("--export", args->export_file,
                     "An export (kmsctl audit export) to check: its chain here, its seals by kmsd");
  verify->callback([&invocation, args] {
    invocation.Select([&invocation, args] { return AuditVerify(invocation, *args); });
  });
  auto export_args = std::make_shared<ExportArgs>();
  CLI::App* exported = AddTenantCommand(
      group, invocation, "export",
      "A tenant's entries as JSON lines, with the chain links and seals that verify them",
      AuditExport, export_args);
  exported->add_option("--since", export_args->since, "From this UTC time (2026-10-01, ...)");
  exported->add_option("--until", export_args->until, "To this UTC time (a date: its end)");
  exported->add_option("--out", export_args->out, "File to write (default: stdout)");
  AddAuditReportCommand(group, invocation);
}

}  // namespace kmsd::kmsctl
