// TenantPolicy: a tenant's security policy and resource quotas, read from the
// seeds' YAML documents as they are (docs/POLICY.md, "Tenant policies and quotas"), and
// the pure decisions made from it.
//
// A document holds `security_policies:`, `resource_quotas:` or both at its
// top level (nothing else). ParseTenantPolicy() reads every field of both
// seed shapes plus kmsd's own (access_control.allowed_peers and
// access_control.time_windows, resource_quotas.keys) and says what it made of
// each one that is not simply enforced: a field kmsd does not know is
// reported (kUnknown) and kept in the stored document, never dropped; a seed
// field that means nothing on one host (data_locality, cost budgets,
// domains...) is accepted and reported as kNotApplicable with why; a field
// that is kept for another part of kmsd (audit retention, storage quotas for
// the client library) is kServedElsewhere. A malformed document, a field of
// the wrong type or out of bounds, or a tenant_id naming another tenant is
// INVALID_ARGUMENT naming the field by its dotted path
// (`security_policies.rate_limiting.burst_size`); nothing is half-applied.
//
// The decisions (WithinTimeWindows, RateLimiter) are pure functions over
// their inputs and an injected time: no clock is read here. Plain data and
// functions; a RateLimiter is not synchronized (its owner locks).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/access.h"
#include "protocol/status.h"

namespace kmsd {

// Largest document accepted (bytes of YAML).
inline constexpr size_t kMaxPolicyDocumentBytes = 64 * 1024;

// One daily window in which the tenant's principals may call, in a fixed
// offset from UTC. `from_minute` > `until_minute` wraps past midnight (the
// window belongs to the day it starts on).
struct TimeWindow {
  uint8_t days = 0;            // bit 0 Monday .. bit 6 Sunday
  int from_minute = 0;         // 0 .. 1439
  int until_minute = 0;        // 1 .. 1440; != from_minute
  int utc_offset_minutes = 0;  // -14:00 .. +14:00
};

struct RateLimits {
  std::optional<uint64_t> per_minute;  // token bucket with `burst`
  std::optional<uint64_t> burst;       // default: per_minute
  std::optional<uint64_t> per_hour;    // each clock hour (UTC)
  std::optional<uint64_t> per_day;     // each UTC day
  bool any() const { return per_minute || per_hour || per_day; }
};

struct TenantPolicy {
  // security_policies.data_protection
  std::optional<uint32_t> key_rotation_days;  // 1 .. 3650
  // security_policies.access_control
  std::optional<uint32_t> max_concurrent_sessions;
  std::optional<uint32_t> session_timeout_minutes;
  bool mfa_required = false;
  std::vector<std::string> ip_whitelist;  // CIDRs, checked; network front ends only
  std::optional<PeerSet> allowed_peers;   // absent: any peer that may connect
  std::vector<TimeWindow> time_windows;   // empty: any time
  // security_policies.audit_logging
  std::optional<uint32_t> audit_retention_days;
  bool log_all_operations = true;
  bool log_data_access = true;
  bool log_admin_actions = true;
  // security_policies.rate_limiting and resource_quotas.api: the stricter of
  // both where both name a limit.
  RateLimits rate;
  // resource_quotas.compute
  std::optional<uint32_t> max_concurrent_requests;
  // resource_quotas.storage (bytes, counts), served to the client library.
  std::optional<uint64_t> max_data_size;
  std::optional<uint64_t> max_file_count;
  std::optional<uint64_t> max_file_size;
  // resource_quotas.keys (kmsd's own)
  std::optional<uint64_t> max_keys;
  std::optional<uint64_t> max_data_keys_per_day;
};

enum class PolicyNoteKind { kUnknown, kNotApplicable, kServedElsewhere };
// "unknown", "not_applicable", "served_elsewhere".
std::string_view PolicyNoteKindName(PolicyNoteKind kind);

// What kmsd made of one field that it does not simply enforce.
struct PolicyNote {
  std::string field;  // dotted path: security_policies.data_protection.data_locality
  PolicyNoteKind kind;
  std::string note;  // why, in a sentence
};

struct ParsedTenantPolicy {
  TenantPolicy policy;
  std::vector<PolicyNote> notes;  // in document order
};

// Reads a document for `tenant`. INVALID_ARGUMENT naming the field for
// anything malformed (see above), for a document over
// kMaxPolicyDocumentBytes, or for one with neither section.
Result<ParsedTenantPolicy> ParseTenantPolicy(std::string_view yaml, std::string_view tenant);

// The first field in which `proposed` allows more than `current` (a higher
// or removed limit or quota, a longer rotation or session, fewer conditions,
// less audit), as its dotted path; nullopt when `proposed` is as strict or
// stricter everywhere. Who may only tighten a policy is the caller's rule.
std::optional<std::string> LoosenedField(const TenantPolicy& current, const TenantPolicy& proposed);

// True for the permissions mfa_required guards: changing anything (keys,
// aliases, principals, API keys, roles, grants, policies, sessions, MFA);
// false for crypto use, reads and opening a session.
bool NeedsMfa(Permission permission);

// True when `windows` is empty or `unix_seconds` falls in one of them.
bool WithinTimeWindows(const std::vector<TimeWindow>& windows, int64_t unix_seconds);

// A tenant's request rate: a token bucket of `burst` requests refilled at
// per_minute a minute (GCRA, exact in integer nanoseconds), and counters of
// the current UTC hour and day. Take() admits one request or says how long
// until one would be admitted; a refused request changes nothing.
class RateLimiter {
 public:
  // OK, or THROTTLED with retry_after_ms (at least 1) naming the limit hit.
  // `unix_nanos` must not go backwards by more than the caller tolerates:
  // an earlier time is treated as the last one seen.
  Status Take(const RateLimits& limits, int64_t unix_nanos);
  // For a new document: the bucket keeps what was spent, but never more
  // than the new limits' burst (a tenant whose burst was lowered is not held
  // back for the old one's length; one whose limit is gone starts afresh).
  // The hour's and day's counts stay.
  void Rebase(const RateLimits& limits, int64_t unix_nanos);

 private:
  int64_t last_nanos_ = 0;
  int64_t theoretical_arrival_ = 0;  // GCRA's TAT, unix nanoseconds
  int64_t hour_start_ = -1;          // the hour `hour_count_` counts, unix seconds
  uint64_t hour_count_ = 0;
  int64_t day_start_ = -1;
  uint64_t day_count_ = 0;
};

// Counts a tenant's data keys in the current UTC day: OK and counted, or
// QUOTA_EXCEEDED with retry_after_ms until the next UTC day.
class DailyQuota {
 public:
  Status Take(std::optional<uint64_t> per_day, int64_t unix_seconds, uint64_t count = 1);
  // Gives back `count` taken earlier the same UTC day (a data key that was
  // not made after all); nothing for another day.
  void Give(int64_t unix_seconds, uint64_t count = 1);

 private:
  int64_t day_start_ = -1;
  uint64_t used_ = 0;
};

}  // namespace kmsd
