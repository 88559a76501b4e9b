// kmsctl's side of audit exports (docs/AUDIT.md, "Export"): the times a user
// gives, and the walk of an export's chain, which needs nothing secret; its
// seals are then checked by kmsd (audit.verify with seals).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/audit_types.h"
#include "protocol/status.h"

namespace kmsd::kmsctl {

// "2026-10-01", "2026-10-01T12:00:00Z" or "2026-10-01T12:00:00.000000Z" as
// the canonical form kmsd compares; a date alone is its first microsecond,
// or its last with `end_of_day`. INVALID_ARGUMENT otherwise.
Result<std::string> CanonicalTime(std::string_view text, bool end_of_day);

// The first and last microsecond of a month "2026-10".
Result<std::pair<std::string, std::string>> MonthPeriod(std::string_view month);

struct ExportCheck {
  std::string tenant;
  std::string since, until;
  uint64_t entries = 0;  // the tenant's
  uint64_t start_seq = 0;
  uint64_t last_seq = 0;
  std::vector<ops::AuditSeal> seals;
  std::optional<std::string> problem;  // the first; the walk stops there
  uint64_t problem_line = 0;
};

// Walks the export's lines: sequence, chain from its start head, each seal's
// head, the tenant of each full entry, and that its last entry of the
// tenant is sealed.
ExportCheck WalkExport(const std::vector<std::string>& lines);

class Invocation;
// The export's seals, checked by kmsd (audit.verify with seals).
Result<ops::AuditVerifyReply> CheckSeals(Invocation& invocation, const std::string& tenant,
                                         const std::vector<ops::AuditSeal>& seals);
// Every page of tenant's export for the period (canonical times; empty: open).
Result<std::vector<std::string>> FetchExport(Invocation& invocation, const std::string& tenant,
                                             const std::string& since, const std::string& until);

}  // namespace kmsd::kmsctl
