// Audit handlers: audit.verify (the log and its checks are daemon/audit/).
#include "daemon/audit/export.h"
#include "daemon/audit/log.h"
#include "daemon/audit/verify.h"
#include "daemon/handlers/handler.h"
#include "keystore/backup_directory.h"
#include "protocol/audit_types.h"

namespace kmsd {
namespace {

ops::AuditVerifyReply Describe(const std::string& dir, const audit::VerifyReport& report) {
  ops::AuditVerifyReply out;
  out.dir = dir;
  out.verified = report.ok();
  out.files = report.files;
  out.entries = report.entries;
  out.requests = report.requests;
  out.seals = report.seals;
  out.first_seq = report.first_seq;
  out.last_seq = report.last_seq;
  out.sealed_through = report.sealed_through;
  out.unsealed = report.unsealed;
  out.token_sealed = report.token.covers;
  if (report.problem) {
    out.problem = report.problem->message;
    if (!report.problem->file.empty()) out.problem_file = report.problem->file;
    if (report.problem->line > 0) out.problem_line = report.problem->line;
    if (report.problem->seq > 0) out.problem_seq = report.problem->seq;
  }
  return out;
}

// An export's seals, one by one, with the token's key.
Result<ops::AuditVerifyReply> VerifySeals(audit::Sealer& sealer,
                                          const std::vector<ops::AuditSeal>& seals) {
  ops::AuditVerifyReply out;
  out.verified = true;
  for (const ops::AuditSeal& seal : seals) {
    const std::optional<audit::Digest> head = audit::DigestFromHex(seal.head);
    const std::optional<audit::Digest> mac = audit::DigestFromHex(seal.mac);
    if (!head || !mac) {
      return Error(Code::kInvalidArgument, "a seal's head and mac are 64 lowercase hex digits");
    }
    ASSIGN_OR_RETURN(bool verified, sealer.Check(audit::SealMacInput(seal.covers, *head), *mac));
    if (!verified) {
      out.verified = false;
      out.problem = "the seal covering entry " + std::to_string(seal.covers) +
                    " does not verify with the token's global/audit-log-key";
      out.problem_seq = seal.covers;
      return out;
    }
    ++out.seals;
    out.sealed_through = std::max(out.sealed_through, seal.covers);
  }
  return out;
}

Result<audit::Log*> LogOf(Call& call) {
  if (call.deps().audit_log == nullptr || call.deps().audit_sealer == nullptr) {
    return Error(Code::kInternal, "the audit log is not served here");
  }
  return call.deps().audit_log;
}

// The live log as written now.
Result<audit::VerifyScope> LiveScope(audit::Log& log) {
  ASSIGN_OR_RETURN(audit::LiveScope live, log.Freeze());
  return audit::VerifyScope{.dir = live.dir,
                            .last_file = live.last_file,
                            .last_file_bytes = live.last_file_bytes,
                            .token = live.token};
}

Result<ops::AuditVerifyReply> Verify(Call& call, const ops::AuditVerifyRequest& request) {
  ASSIGN_OR_RETURN(audit::Log * log, LogOf(call));
  audit::Sealer* sealer = call.deps().audit_sealer;
  audit::VerifyScope scope;
  if (!request.dir || *request.dir == log->dir()) {
    ASSIGN_OR_RETURN(scope, LiveScope(*log));
  } else {
    if (Status path = CheckAbsoluteFilePath(*request.dir); !path.ok()) {
      return Error(Code::kInvalidArgument,
                   "dir must be an absolute path without '.' or '..' components");
    }
    scope.dir = std::string(*request.dir);
    ASSIGN_OR_RETURN(scope.token, sealer->ReadHead());
  }
  ASSIGN_OR_RETURN(audit::VerifyReport report, audit::Verify(scope, *sealer));
  return Describe(scope.dir, report);
}

// A canonical time (2026-12-03T12:34:56.000000Z) or INVALID_ARGUMENT naming `field`.
Result<std::string> TimeArgument(std::optional<std::string_view> text, const char* field) {
  if (!text) return std::string();
  if (!audit::ParseRfc3339Micros(*text)) {
    return Error(Code::kInvalidArgument, std::string(field) +
                                             " must be a UTC time such as "
                                             "2026-12-03T12:34:56.000000Z");
  }
  return std::string(*text);
}

Result<ops::AuditVerifyReply> CheckSeals(Call& call, const ops::AuditCheckSealsRequest& request) {
  RETURN_IF_ERROR(LogOf(call));
  RETURN_IF_ERROR(call.hierarchy().DescribeTenant(call.tenant()));
  constexpr size_t kMaxSeals = 100000;
  if (request.seals.size() > kMaxSeals) {
    return Error(Code::kInvalidArgument,
                 "at most " + std::to_string(kMaxSeals) + " seals per request");
  }
  return VerifySeals(*call.deps().audit_sealer, request.seals);
}

Result<ops::AuditExportReply> Export(Call& call, const ops::AuditExportRequest& request) {
  ASSIGN_OR_RETURN(audit::Log * log, LogOf(call));
  RETURN_IF_ERROR(call.hierarchy().DescribeTenant(call.tenant()));
  constexpr uint64_t kMaxLines = 20000;
  audit::ExportRequest what{.tenant = std::string(call.tenant()),
                            .since = "",
                            .until = "",
                            .after_seq = request.after_seq,
                            .max_lines = 2000};
  ASSIGN_OR_RETURN(what.since, TimeArgument(request.since, "since"));
  ASSIGN_OR_RETURN(what.until, TimeArgument(request.until, "until"));
  if (request.max_lines) {
    if (*request.max_lines < 1 || *request.max_lines > kMaxLines) {
      return Error(Code::kInvalidArgument,
                   "max_lines must be from 1 to " + std::to_string(kMaxLines));
    }
    what.max_lines = *request.max_lines;
  }
  ASSIGN_OR_RETURN(audit::VerifyScope scope, LiveScope(*log));
  ASSIGN_OR_RETURN(audit::ExportPage page, audit::ExportTenant(scope, what));
  return ops::AuditExportReply{.lines = std::move(page.lines),
                               .next_after_seq = page.next_after_seq,
                               .entries = page.entries};
}

}  // namespace

void AddAuditHandlers(HandlerTable& table) {
  table.Add<ops::AuditVerify, Verify>();
  table.Add<ops::AuditExport, Export>();
  table.Add<ops::AuditCheckSeals, CheckSeals>();
}

}  // namespace kmsd
