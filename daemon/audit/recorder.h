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

#include <functional>
#include <string>

#include "daemon/audit/log.h"
#include "daemon/pipeline.h"

namespace kmsd {

// Which details a tenant's entries keep (its policy's audit_logging; docs/
// POLICY.md). Every request has its entry whatever they say: time, op,
// tenant, caller, principal, request id and outcome are always kept.
struct AuditDetails {
  bool all_operations = true;  // false: reads keep no more than the above
  bool data_access = true;     // false: crypto operations keep no keys, items or sizes
  bool admin_actions = true;   // false: changes keep no decision details or message
};

// The entry's fields (a JSON object without "seq") for `context` at
// `now_nanos` (wall clock).
std::string RequestEntryFields(const RequestContext& context, int64_t now_nanos,
                               const AuditDetails& details = {});

class AuditRecorder final : public Recorder {
 public:
  // `details_of(tenant)`: the details kept for a tenant's entries (a
  // tenant-less request of a principal is its tenant's).
  using DetailsOf = std::function<AuditDetails(std::string_view tenant)>;
  explicit AuditRecorder(audit::Log& log, DetailsOf details_of = nullptr)
      : log_(log), details_of_(std::move(details_of)) {}
  Status Ready() const override { return log_.Ready(); }
  // The entry first: the log line is written only for a recorded request.
  Status Record(const RequestContext& context) override;

 private:
  audit::Log& log_;
  const DetailsOf details_of_;
  LogRecorder line_;
};

}  // namespace kmsd
