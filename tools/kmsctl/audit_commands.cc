// kmsctl audit verify (docs/CLI.md, "Audit"): asks kmsd to check its audit
// log, or a copy of one, against the token's seals and head. Exits 0 when it
// verifies, 5 (the data is bad) at the first problem, naming its file, line
// and entry.
#include <filesystem>
#include <memory>
#include <string>

#include "protocol/audit_types.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

struct VerifyArgs {
  std::string dir;
};

std::string Where(const ops::AuditVerifyReply& report) {
  std::string where;
  if (report.problem_file) where += "file " + Output::Printable(*report.problem_file);
  if (report.problem_line) where += " line " + std::to_string(*report.problem_line);
  if (report.problem_seq)
    where += (where.empty() ? "entry " : ", entry ") + std::to_string(*report.problem_seq);
  return where.empty() ? "" : where + ": ";
}

Status AuditVerify(Invocation& invocation, const VerifyArgs& a) {
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

}  // namespace

void AddAuditCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("audit", "Check the audit log");
  group->require_subcommand(1);
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* verify = group->add_subcommand(
      "verify",
      "Check every entry, the chain, the seals and the token's head; exit 5 at the first problem");
  verify->add_option("--dir", args->dir,
                     "A copy of an audit log to check (default: kmsd's own); kmsd reads it");
  verify->callback([&invocation, args] {
    invocation.Select([&invocation, args] { return AuditVerify(invocation, *args); });
  });
}

}  // namespace kmsd::kmsctl
