// The crash test's look at the audit log after a restart (DESIGN.md
// invariant 7 under SIGKILL): kmsd verifies its log, and every request a
// client saw acknowledged has an OK entry (counted per operation: request
// ids repeat across connections, and a call in flight at the kill may have
// its entry too, so the log may hold more).
#pragma once

#include <map>
#include <string>

namespace kmsd::testing {

// Empty when the log at `audit_dir` verifies (audit.verify through
// `socket_path`) and holds at least `acked_by_op[op]` OK request entries for
// every op; else what is wrong.
std::string CheckAuditLog(const std::string& socket_path, const std::string& audit_dir,
                          const std::map<std::string, uint64_t>& acked_by_op);

}  // namespace kmsd::testing
