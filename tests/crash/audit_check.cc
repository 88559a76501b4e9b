#include "tests/crash/audit_check.h"

#include <chrono>

#include "client/connection.h"
#include "tests/support/audit_log_files.h"

namespace kmsd::testing {

std::string CheckAuditLog(const std::string& socket_path, const std::string& audit_dir,
                          const std::map<std::string, uint64_t>& acked_by_op) {
  auto connection = Connection::Dial(socket_path, std::chrono::milliseconds(60000));
  if (!connection) return "cannot connect: " + connection.error().ToString();
  auto reply = (*connection)->Call("audit.verify", "");
  if (!reply) return "audit.verify failed: " + reply.error().ToString();
  if (!reply->result().Bool("verified").value_or(false)) {
    return "the audit log does not verify: " +
           std::string(reply->result().String("problem").value_or("?")) + " (file " +
           std::string(reply->result().String("problem_file").value_or("-")) + ")";
  }
  // A plain scan, not a JSON parse of every line: this runs after every kill
  // and the log only grows (kmsd's own verification above parsed it all).
  std::map<std::string, uint64_t> recorded;
  constexpr std::string_view kOp = "\"op\":\"";
  for (const auto& [name, lines] : ReadAuditLines(audit_dir)) {
    for (const std::string& line : lines) {
      if (line.find("\"outcome\":\"OK\"") == std::string::npos ||
          line.find("\"type\":\"request\"") == std::string::npos) {
        continue;
      }
      const size_t at = line.find(kOp);
      if (at == std::string::npos) continue;
      const size_t begin = at + kOp.size();
      ++recorded[line.substr(begin, line.find('"', begin) - begin)];
    }
  }
  std::string missing;
  for (const auto& [op, acked] : acked_by_op) {
    if (recorded[op] < acked) {
      missing += op + ": " + std::to_string(acked) + " acknowledged, " +
                 std::to_string(recorded[op]) + " recorded; ";
    }
  }
  return missing.empty() ? "" : "acknowledged requests without an entry: " + missing;
}

}  // namespace kmsd::testing
