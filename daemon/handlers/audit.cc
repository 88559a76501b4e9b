// Audit handlers: audit.verify (the log and its checks are daemon/audit/).
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

Result<ops::AuditVerifyReply> Verify(Call& call, const ops::AuditVerifyRequest& request) {
  audit::Log* log = call.deps().audit_log;
  audit::Sealer* sealer = call.deps().audit_sealer;
  if (log == nullptr || sealer == nullptr) {
    return Error(Code::kInternal, "the audit log is not served here");
  }
  audit::VerifyScope scope;
  if (!request.dir || *request.dir == log->dir()) {
    ASSIGN_OR_RETURN(audit::LiveScope live, log->Freeze());
    scope = {.dir = live.dir,
             .last_file = live.last_file,
             .last_file_bytes = live.last_file_bytes,
             .token = live.token};
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

}  // namespace

void AddAuditHandlers(HandlerTable& table) { table.Add<ops::AuditVerify, Verify>(); }

}  // namespace kmsd
