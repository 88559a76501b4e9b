// Lifecycle handlers: key.enable, key.disable, key and tenant
// schedule-deletion and cancel-deletion, key.set-rotation,
// key.set-min-decryption-version.
#include <limits>

#include "daemon/handlers/handler.h"
#include "protocol/lifecycle_limits.h"

namespace kmsd {
namespace {

// The pending window of a schedule-deletion, in seconds (PROTOCOL.md):
// pending_window_days, 7 to 30 (default 30), or pending_window_seconds when
// the configuration lowers the minimum below 7 days.
Result<int64_t> PendingWindowSeconds(const KeyHierarchy& hierarchy,
                                     const ops::PendingWindow& window) {
  const auto& [days, seconds] = window;
  if (days && seconds) {
    return Error(Code::kInvalidArgument,
                 "give pending_window_days or pending_window_seconds, not both");
  }
  if (seconds) {
    const int64_t min = hierarchy.lifecycle().min_pending_window_seconds;
    if (min >= kDefaultMinPendingWindowSeconds) {
      return Error(Code::kInvalidArgument,
                   "pending_window_seconds is accepted only when kmsd's configuration lowers "
                   "lifecycle.min_pending_window_seconds");
    }
    if (*seconds < static_cast<uint64_t>(min) ||
        *seconds > static_cast<uint64_t>(kMaxPendingWindowSeconds)) {
      return Error(Code::kInvalidArgument, "pending_window_seconds must be " + std::to_string(min) +
                                               " to " + std::to_string(kMaxPendingWindowSeconds));
    }
    return static_cast<int64_t>(*seconds);
  }
  constexpr auto kMinDays = static_cast<uint64_t>(kMinPendingWindowDays);
  constexpr auto kMaxDays = static_cast<uint64_t>(kMaxPendingWindowDays);
  const uint64_t window_days = days.value_or(kDefaultPendingWindowDays);
  if (window_days < kMinDays || window_days > kMaxDays) {
    return Error(Code::kInvalidArgument, "pending_window_days must be " + std::to_string(kMinDays) +
                                             " to " + std::to_string(kMaxDays));
  }
  return static_cast<int64_t>(window_days) * kSecondsPerDay;
}

template <bool kEnabled>
Result<ops::KeyDescription> SetEnabled(Call& call, const ops::KeyArg& request) {
  ASSIGN_OR_RETURN(KeyInfo key,
                   call.hierarchy().SetKeyEnabled(call.tenant(), request.key, kEnabled));
  return DescribeKey(key);
}

Result<ops::KeyDescription> ScheduleKeyDeletion(Call& call,
                                                const ops::KeyDeletionRequest& request) {
  ASSIGN_OR_RETURN(int64_t window, PendingWindowSeconds(call.hierarchy(), request));
  ASSIGN_OR_RETURN(KeyInfo key,
                   call.hierarchy().ScheduleKeyDeletion(call.tenant(), request.key, window));
  return DescribeKey(key);
}

Result<ops::KeyDescription> CancelKeyDeletion(Call& call, const ops::KeyArg& request) {
  ASSIGN_OR_RETURN(KeyInfo key, call.hierarchy().CancelKeyDeletion(call.tenant(), request.key));
  return DescribeKey(key);
}

Result<ops::TenantDescription> ScheduleTenantDeletion(Call& call,
                                                      const ops::TenantDeletionRequest& request) {
  ASSIGN_OR_RETURN(int64_t window, PendingWindowSeconds(call.hierarchy(), request));
  ASSIGN_OR_RETURN(TenantInfo info, call.hierarchy().ScheduleTenantDeletion(call.tenant(), window));
  return DescribeTenant(info);
}

Result<ops::TenantDescription> CancelTenantDeletion(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(TenantInfo info, call.hierarchy().CancelTenantDeletion(call.tenant()));
  return DescribeTenant(info);
}

Result<ops::KeyDescription> SetRotation(Call& call, const ops::SetRotationRequest& request) {
  const uint64_t period = request.rotation_period_seconds;
  if (period > static_cast<uint64_t>(kMaxRotationPeriodSeconds)) {
    return Error(Code::kInvalidArgument, "rotation_period_seconds must be at most " +
                                             std::to_string(kMaxRotationPeriodSeconds) +
                                             " (0 turns it off)");
  }
  std::optional<int64_t> seconds;
  if (period != 0) seconds = static_cast<int64_t>(period);
  ASSIGN_OR_RETURN(KeyInfo key,
                   call.hierarchy().SetRotationPeriod(call.tenant(), request.key, seconds));
  return DescribeKey(key);
}

Result<ops::KeyDescription> SetMinDecryptionVersion(
    Call& call, const ops::SetMinDecryptionVersionRequest& request) {
  if (request.version < 1 || request.version > std::numeric_limits<uint32_t>::max()) {
    return Error(Code::kInvalidArgument, "version must be 1 to 4294967295");
  }
  ASSIGN_OR_RETURN(KeyInfo key,
                   call.hierarchy().SetMinDecryptionVersion(
                       call.tenant(), request.key, static_cast<uint32_t>(request.version)));
  return DescribeKey(key);
}

}  // namespace

void AddLifecycleHandlers(HandlerTable& table) {
  table.Add<ops::KeyEnable, SetEnabled<true>>();
  table.Add<ops::KeyDisable, SetEnabled<false>>();
  table.Add<ops::KeyScheduleDeletion, ScheduleKeyDeletion>();
  table.Add<ops::KeyCancelDeletion, CancelKeyDeletion>();
  table.Add<ops::TenantScheduleDeletion, ScheduleTenantDeletion>();
  table.Add<ops::TenantCancelDeletion, CancelTenantDeletion>();
  table.Add<ops::KeySetRotation, SetRotation>();
  table.Add<ops::KeySetMinDecryptionVersion, SetMinDecryptionVersion>();
}

}  // namespace kmsd
