// Alerts: what an operator must hear about (docs/OPERATIONS.md, "Alerts"),
// from the seeds' security, quota and health alerts. Each kind has a stable
// MESSAGE_ID (a journald catalog id) and a syslog priority; raising one
// writes a structured journal entry (System::Journal: MESSAGE, PRIORITY,
// MESSAGE_ID, KMSD_ALERT=<kind>, KMSD_SUBJECT=<who or what>) and an "ALERT"
// line in the daemon's log, and counts it for `status` (kmsd_alerts_total).
// Every occurrence is counted; the journal and log hear about one subject of
// one kind at most once a minute, with the number held back since.
//
// Observe() is the record stage's hook: it raises what a request's outcome
// says (a peer's repeated denials, a tenant's quota or rate limit, the audit
// log or the token failing). Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/request_context.h"
#include "protocol/operation_types.h"

namespace kmsd {

enum class AlertKind : uint8_t {
  kRepeatedDenials,    // security: a peer refused ACCESS_DENIED again and again
  kLockout,            // security: a peer or principal locked out after failed attempts
  kQuotaExceeded,      // quota: a tenant's request over its quota
  kRateLimited,        // quota: a tenant's requests over its rate or queue limits
  kAuditWriteFailure,  // health: the audit log cannot be written; nothing is served
  kTokenUnavailable,   // health: the PKCS#11 token does not answer
  kRotationOverdue,    // health: a key due to rotate could not be rotated
  kShreddingFailed,    // health: a key or tenant due to be shredded was not
};
inline constexpr size_t kAlertKinds = 8;

struct AlertKindInfo {
  AlertKind kind;
  std::string_view name;        // KMSD_ALERT= and the metrics' label
  std::string_view message_id;  // MESSAGE_ID=, 128 bits in hex
  int priority;                 // syslog: 2 crit, 4 warning, 5 notice
  std::string_view category;    // security, quota or health
};
const std::array<AlertKindInfo, kAlertKinds>& AlertKinds();

// A peer with this many ACCESS_DENIED replies within kDenialWindow raises
// kRepeatedDenials.
inline constexpr size_t kDenialThreshold = 10;
inline constexpr std::chrono::seconds kDenialWindow{60};

class Alerts {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Alerts(std::function<Clock::time_point()> now = Clock::now) : now_(std::move(now)) {}

  // `subject` names who or what (a peer, a tenant, a key); `message` says
  // what happened, for people.
  void Raise(AlertKind kind, std::string_view subject, std::string_view message);
  void Observe(const RequestContext& context);
  std::vector<ops::AlertCount> Snapshot() const;

 private:
  std::function<Clock::time_point()> now_;
  std::array<std::atomic<uint64_t>, kAlertKinds> counts_{};
  std::mutex mu_;
  // Per kind and subject: when it was last told, and how many were held back.
  struct Told {
    Clock::time_point at;
    uint64_t held_back = 0;
  };
  std::map<std::pair<AlertKind, std::string>, Told> told_;            // guarded by mu_
  std::map<uint64_t, std::deque<Clock::time_point>> denials_by_uid_;  // guarded by mu_
};

}  // namespace kmsd
