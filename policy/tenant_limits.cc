// The decisions of a tenant's policy (policy/tenant_policy.h): time
// windows, the request-rate limiter and the daily quota. Pure: every time is
// the caller's.
#include <algorithm>
#include <limits>
#include <string>

#include "policy/floor_div.h"
#include "policy/tenant_policy.h"

namespace kmsd {
namespace {

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? std::numeric_limits<int64_t>::max() : sum;
}

uint32_t CeilMillis(int64_t nanos) {
  const int64_t ms = nanos <= 0 ? 1 : nanos / 1000000 + (nanos % 1000000 != 0 ? 1 : 0);
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 1, std::numeric_limits<uint32_t>::max()));
}

constexpr int64_t kNanosPerSecond = 1000000000;

}  // namespace

bool WithinTimeWindows(const std::vector<TimeWindow>& windows, int64_t unix_seconds) {
  if (windows.empty()) return true;
  for (const TimeWindow& w : windows) {
    const int64_t local = unix_seconds + int64_t{w.utc_offset_minutes} * 60;
    const int64_t day = FloorDiv(local, 86400);
    const int minute = static_cast<int>((local - day * 86400) / 60);
    const int weekday = static_cast<int>(day + 3 - FloorDiv(day + 3, 7) * 7);  // 1970-01-01: Thu
    const int yesterday = (weekday + 6) % 7;
    const bool today_on = (w.days >> weekday) & 1;
    const bool yesterday_on = (w.days >> yesterday) & 1;
    if (w.from_minute < w.until_minute) {
      if (today_on && minute >= w.from_minute && minute < w.until_minute) return true;
    } else {
      // Wraps past midnight: belongs to the day it starts on.
      if (today_on && minute >= w.from_minute) return true;
      if (yesterday_on && minute < w.until_minute) return true;
    }
  }
  return false;
}

Status RateLimiter::Take(const RateLimits& limits, int64_t unix_nanos) {
  const int64_t now = std::max(unix_nanos, last_nanos_);
  std::string refused;
  int64_t wait = 0;
  auto refuse = [&](const std::string& what, int64_t nanos) {
    refused += (refused.empty() ? "" : "; ") + what + " reached";
    wait = std::max(wait, nanos);
  };

  int64_t tat = theoretical_arrival_;
  if (limits.per_minute) {
    const uint64_t per_minute = std::max<uint64_t>(*limits.per_minute, 1);
    const uint64_t burst = std::max<uint64_t>(limits.burst.value_or(per_minute), 1);
    const int64_t interval = std::max<int64_t>(
        static_cast<int64_t>(60 * static_cast<uint64_t>(kNanosPerSecond) / per_minute), 1);
    int64_t tolerance;
    if (__builtin_mul_overflow(static_cast<int64_t>(burst - 1), interval, &tolerance)) {
      tolerance = std::numeric_limits<int64_t>::max();
    }
    const int64_t arrival = std::max(theoretical_arrival_, now);
    if (arrival - now > tolerance) {
      std::string what = "requests_per_minute of " + std::to_string(per_minute);
      if (burst != per_minute) what += " (burst " + std::to_string(burst) + ")";
      refuse(what, arrival - tolerance - now);
    } else {
      tat = SaturatingAdd(arrival, interval);
    }
  }

  const int64_t now_seconds = FloorDiv(now, kNanosPerSecond);
  const int64_t into_second = now - now_seconds * kNanosPerSecond;
  const int64_t hour = FloorDiv(now_seconds, 3600) * 3600;
  const int64_t day = FloorDiv(now_seconds, 86400) * 86400;
  const uint64_t hour_count = hour == hour_start_ ? hour_count_ : 0;
  const uint64_t day_count = day == day_start_ ? day_count_ : 0;
  if (limits.per_hour && hour_count >= *limits.per_hour) {
    refuse("requests_per_hour of " + std::to_string(*limits.per_hour),
           (hour + 3600 - now_seconds) * kNanosPerSecond - into_second);
  }
  if (limits.per_day && day_count >= *limits.per_day) {
    refuse("requests_per_day of " + std::to_string(*limits.per_day),
           (day + 86400 - now_seconds) * kNanosPerSecond - into_second);
  }
  if (!refused.empty()) {
    return Status(Code::kThrottled, "tenant rate limit: " + refused)
        .WithRetryAfter(CeilMillis(wait));
  }
  last_nanos_ = now;
  theoretical_arrival_ = tat;
  hour_start_ = hour;
  hour_count_ = hour_count + 1;
  day_start_ = day;
  day_count_ = day_count + 1;
  return OkStatus();
}

Status DailyQuota::Take(std::optional<uint64_t> per_day, int64_t unix_seconds, uint64_t count) {
  // An earlier day than the one counted is taken as that one (-1: none yet).
  const int64_t today = FloorDiv(unix_seconds, 86400) * 86400;
  const int64_t day = day_start_ != -1 && today < day_start_ ? day_start_ : today;
  const uint64_t used = day == day_start_ ? used_ : 0;
  if (per_day && (used > *per_day || count > *per_day - used)) {
    const int64_t seconds_left = day + 86400 - unix_seconds;
    const int64_t wait = seconds_left > (std::numeric_limits<int64_t>::max() / kNanosPerSecond)
                             ? std::numeric_limits<int64_t>::max()
                             : seconds_left * kNanosPerSecond;
    std::string message = "max_data_keys_per_day of " + std::to_string(*per_day) +
                          " reached: " + std::to_string(used) + " used this UTC day";
    if (count > 1) message += ", " + std::to_string(count) + " asked";
    return Status(Code::kQuotaExceeded, std::move(message)).WithRetryAfter(CeilMillis(wait));
  }
  day_start_ = day;
  used_ = used + std::min(count, std::numeric_limits<uint64_t>::max() - used);
  return OkStatus();
}

bool NeedsMfa(Permission permission) {
  // Reads, the cryptographic operations and opening a session go without;
  // changes (and verifying the whole audit log, an admin's) need it.
  if (permission == Permission::kSessionLogin) return false;
  if (permission == Permission::kAuditVerify) return true;
  return KindOfPermission(permission) == PermissionKind::kChange;
}

void DailyQuota::Give(int64_t unix_seconds, uint64_t count) {
  if (FloorDiv(unix_seconds, 86400) * 86400 != day_start_) return;
  used_ -= std::min(count, used_);
}

void RateLimiter::Rebase(const RateLimits& limits, int64_t unix_nanos) {
  const int64_t now = std::max(unix_nanos, last_nanos_);
  if (!limits.per_minute) {
    theoretical_arrival_ = 0;
    return;
  }
  const uint64_t per_minute = std::max<uint64_t>(*limits.per_minute, 1);
  const uint64_t burst = std::max<uint64_t>(limits.burst.value_or(per_minute), 1);
  const int64_t interval = std::max<int64_t>(
      static_cast<int64_t>(60 * static_cast<uint64_t>(kNanosPerSecond) / per_minute), 1);
  // At most a full bucket spent: the next request waits one interval at most
  // beyond the new tolerance.
  int64_t full;
  if (__builtin_mul_overflow(static_cast<int64_t>(burst), interval, &full)) return;
  theoretical_arrival_ = std::min(theoretical_arrival_, SaturatingAdd(now, full));
}

namespace {

// Absent is no limit: looser than any.
bool Looser(const std::optional<uint64_t>& current, const std::optional<uint64_t>& proposed) {
  return current && (!proposed || *proposed > *current);
}
template <typename T>
std::optional<uint64_t> Widen(const std::optional<T>& value) {
  return value ? std::optional<uint64_t>(*value) : std::nullopt;
}

// True when `proposed` lets in a peer `current` does not.
bool MorePeers(const std::optional<PeerSet>& current, const std::optional<PeerSet>& proposed) {
  if (!current) return false;
  if (!proposed) return true;
  return !std::includes(current->uids.begin(), current->uids.end(), proposed->uids.begin(),
                        proposed->uids.end()) ||
         !std::includes(current->gids.begin(), current->gids.end(), proposed->gids.begin(),
                        proposed->gids.end());
}

bool SameWindows(const std::vector<TimeWindow>& a, const std::vector<TimeWindow>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.days == y.days && x.from_minute == y.from_minute && x.until_minute == y.until_minute &&
           x.utc_offset_minutes == y.utc_offset_minutes;
  });
}

}  // namespace

std::optional<std::string> LoosenedField(const TenantPolicy& current,
                                         const TenantPolicy& proposed) {
  const std::string sp = "security_policies.", rq = "resource_quotas.";
  struct Limit {
    std::string field;
    std::optional<uint64_t> current, proposed;
  };
  const Limit limits[] = {
      {sp + "data_protection.key_rotation_days", Widen(current.key_rotation_days),
       Widen(proposed.key_rotation_days)},
      {sp + "access_control.max_concurrent_sessions", Widen(current.max_concurrent_sessions),
       Widen(proposed.max_concurrent_sessions)},
      {sp + "access_control.session_timeout_minutes", Widen(current.session_timeout_minutes),
       Widen(proposed.session_timeout_minutes)},
      {sp + "rate_limiting.requests_per_minute", current.rate.per_minute, proposed.rate.per_minute},
      {sp + "rate_limiting.burst_size", current.rate.burst, proposed.rate.burst},
      {sp + "rate_limiting.requests_per_hour", current.rate.per_hour, proposed.rate.per_hour},
      {rq + "api.requests_per_day", current.rate.per_day, proposed.rate.per_day},
      {rq + "compute.max_concurrent_requests", Widen(current.max_concurrent_requests),
       Widen(proposed.max_concurrent_requests)},
      {rq + "storage.max_data_size", current.max_data_size, proposed.max_data_size},
      {rq + "storage.max_file_count", current.max_file_count, proposed.max_file_count},
      {rq + "storage.max_file_size", current.max_file_size, proposed.max_file_size},
      {rq + "keys.max_keys", current.max_keys, proposed.max_keys},
      {rq + "keys.max_data_keys_per_day", current.max_data_keys_per_day,
       proposed.max_data_keys_per_day},
  };
  for (const Limit& limit : limits) {
    if (Looser(limit.current, limit.proposed)) return limit.field;
  }
  if (current.mfa_required && !proposed.mfa_required) return sp + "access_control.mfa_required";
  if (MorePeers(current.allowed_peers, proposed.allowed_peers)) {
    return sp + "access_control.allowed_peers";
  }
  // Windows are not compared for inclusion: a change of the ones in force
  // is a loosening unless there were none.
  if (!current.time_windows.empty() && !SameWindows(current.time_windows, proposed.time_windows)) {
    return sp + "access_control.time_windows";
  }
  // Audit: keeping entries for less time (the audit log prunes them; none:
  // kept for ever), or logging less, is looser.
  if (proposed.audit_retention_days &&
      (!current.audit_retention_days ||
       *proposed.audit_retention_days < *current.audit_retention_days)) {
    return sp + "audit_logging.retention_days";
  }
  if ((current.log_all_operations && !proposed.log_all_operations) ||
      (current.log_data_access && !proposed.log_data_access) ||
      (current.log_admin_actions && !proposed.log_admin_actions)) {
    return sp + "audit_logging";
  }
  return std::nullopt;
}

}  // namespace kmsd
