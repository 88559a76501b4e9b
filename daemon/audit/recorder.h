// AuditRecorder: the pipeline's record stage writing the audit log
// (daemon/audit/log.h), and the daemon's log line beside it.
//
// A request's entry holds what RequestContext holds and nothing else: time,
// request id, caller (uid, gid, pid), principal (tenant, name, API key id,
// session id, MFA), tenant, operation, the decision (permission, grants used,
// why not), the keys and versions used (a batch item's with its index), the
// batch items' outcomes, the outcome code and message, the request's and
// reply's sizes and the time taken. Never a key, plaintext, secret, TOTP seed
// or PIN: none of them is in a RequestContext. docs/AUDIT.md lists the fields.
#pragma once

#include <string>

#include "daemon/audit/log.h"
#include "daemon/pipeline.h"

namespace kmsd {

// The entry's fields (a JSON object without "seq") for `context` at
// `now_nanos` (wall clock).
std::string RequestEntryFields(const RequestContext& context, int64_t now_nanos);

class AuditRecorder final : public Recorder {
 public:
  explicit AuditRecorder(audit::Log& log) : log_(log) {}
  Status Ready() const override { return log_.Ready(); }
  // The entry first: the log line is written only for a recorded request.
  Status Record(const RequestContext& context) override;

 private:
  audit::Log& log_;
  LogRecorder line_;
};

}  // namespace kmsd
