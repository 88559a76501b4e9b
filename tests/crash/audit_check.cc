#include "tests/crash/audit_check.h"

#include <chrono>
#include <nlohmann/json.hpp>

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
  std::map<std::string, uint64_t> recorded;
  for (const auto& [name, lines] : ReadAuditLines(audit_dir)) {
    for (const std::string& line : lines) {
      const nlohmann::json entry = AuditJsonOf(line);
      if (entry["type"] == "request" && entry["outcome"] == "OK") {
        ++recorded[entry["op"].get<std::string>()];
      }
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
