#include "daemon/tenant_rules.h"

#include <spdlog/spdlog.h>

namespace kmsd {
namespace {

// How long a request refused for max_concurrent_requests is told to wait:
// about one request's time, so the caller comes back when a place is free.
constexpr uint32_t kConcurrencyRetryAfterMs = 5;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

Status Denied(RequestContext& context, std::string reason) {
  context.decision.decided = true;
  context.decision.allowed = false;
  context.decision.reason = reason;
  return Status(Code::kAccessDenied, std::move(reason));
}

}  // namespace

struct TenantRules::State {
  std::mutex mu;
  // The record `policy` was read from (kept, so its address is not reused).
  std::shared_ptr<const TenantPolicyRecord> source;
  std::shared_ptr<const TenantPolicy> policy;  // nullptr: does not read
  RateLimiter rate;
  DailyQuota data_keys;
  uint64_t in_flight = 0;
};

TenantRules::TenantRules(AccessDirectory& directory, KeyHierarchy& hierarchy,
                         std::function<int64_t()> now_nanos)
    : directory_(directory), hierarchy_(hierarchy), now_nanos_(std::move(now_nanos)) {}

TenantRules::~TenantRules() = default;

void TenantRules::Load() {
  for (const auto& record : directory_.AllPolicies()) {
    std::shared_ptr<State> state = StateOf(record->tenant);
    if (state == nullptr) continue;
    std::shared_ptr<const TenantPolicy> policy;
    {
      std::lock_guard lock(state->mu);
      policy = state->policy;
    }
    if (policy == nullptr) continue;  // logged by StateOf
    if (Status applied = ApplyRotationCeiling(record->tenant, policy.get()); !applied.ok()) {
      spdlog::error("tenant {}: policy's key_rotation_days not applied: {}", record->tenant,
                    applied.ToString());
    }
  }
}

std::shared_ptr<TenantRules::State> TenantRules::StateOf(std::string_view tenant) const {
  if (!directory_.AnyPolicy()) return nullptr;
  std::shared_ptr<const TenantPolicyRecord> record = directory_.PolicyOf(tenant);
  if (record == nullptr) return nullptr;
  std::shared_ptr<State> state;
  {
    std::shared_lock lock(mu_);
    if (auto it = states_.find(tenant); it != states_.end()) state = it->second;
  }
  if (state == nullptr) {
    std::unique_lock lock(mu_);
    std::shared_ptr<State>& slot = states_[std::string(tenant)];
    if (slot == nullptr) slot = std::make_shared<State>();
    state = slot;
  }
  {
    std::lock_guard lock(state->mu);
    if (state->source == record) return state;
  }
  // A new document: read it (outside the lock), keep the counters.
  std::shared_ptr<const TenantPolicy> policy;
  if (auto parsed = ParseTenantPolicy(record->document, tenant)) {
    policy = std::make_shared<const TenantPolicy>(std::move(parsed->policy));
  } else {
    spdlog::error(
        "tenant {}: the stored policy does not read ({}); its principals are refused "
        "until a new one is put",
        tenant, parsed.error().ToString());
  }
  std::lock_guard lock(state->mu);
  if (state->source != record) {
    state->source = std::move(record);
    state->policy = std::move(policy);
  }
  return state;
}

Status TenantRules::ApplyRotationCeiling(std::string_view tenant, const TenantPolicy* policy) {
  std::optional<int64_t> ceiling;
  if (policy != nullptr && policy->key_rotation_days) {
    ceiling = int64_t{*policy->key_rotation_days} * 86400;
  }
  return hierarchy_.SetRotationCeiling(tenant, ceiling);
}

Result<TenantPolicyView> TenantRules::Put(std::string_view tenant, std::string_view document) {
  ASSIGN_OR_RETURN(ParsedTenantPolicy parsed, ParseTenantPolicy(document, tenant));
  std::lock_guard put(put_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicyRecord> record,
                   directory_.PutTenantPolicy(tenant, std::string(document)));
  RETURN_IF_ERROR(ApplyRotationCeiling(tenant, &parsed.policy));
  spdlog::info("tenant {}: policy put ({} bytes, {} notes)", tenant, document.size(),
               parsed.notes.size());
  return TenantPolicyView{std::move(record), std::move(parsed.notes)};
}

Result<TenantPolicyView> TenantRules::Get(std::string_view tenant) const {
  TenantPolicyView view;
  view.record = directory_.PolicyOf(tenant);
  if (view.record == nullptr) return view;
  if (auto parsed = ParseTenantPolicy(view.record->document, tenant)) {
    view.notes = std::move(parsed->notes);
  } else {
    return Error(Code::kInternal,
                 "tenant '" + std::string(tenant) +
                     "': the stored policy does not read: " + parsed.error().message());
  }
  return view;
}

Result<Admission> TenantRules::Admit(RequestContext& context) {
  if (!context.principal || context.tenant.empty()) return Admission();
  std::shared_ptr<State> state = StateOf(context.tenant);
  if (state == nullptr) return Admission();
  const int64_t now = now_nanos_();
  std::unique_lock lock(state->mu);
  if (state->policy == nullptr) {
    return Error(Code::kInternal,
                 "tenant '" + context.tenant + "': the stored policy does not read; put a new one");
  }
  const TenantPolicy& policy = *state->policy;
  if (policy.allowed_peers && !policy.allowed_peers->Contains(context.caller)) {
    return Error(Denied(context, "tenant '" + context.tenant + "' does not allow uid " +
                                     std::to_string(context.caller.uid) +
                                     ": not among its policy's allowed_peers"));
  }
  if (!WithinTimeWindows(policy.time_windows, now / kNanosPerSecond)) {
    return Error(Denied(
        context, "tenant '" + context.tenant + "' is outside its policy's time_windows now"));
  }
  if (policy.max_concurrent_requests && state->in_flight >= *policy.max_concurrent_requests) {
    return Error(Status(Code::kThrottled, "tenant '" + context.tenant + "' has " +
                                              std::to_string(state->in_flight) +
                                              " requests in flight: its max_concurrent_requests")
                     .WithRetryAfter(kConcurrencyRetryAfterMs));
  }
  if (policy.rate.any()) RETURN_IF_ERROR(state->rate.Take(policy.rate, now));
  if (!policy.max_concurrent_requests) return Admission();
  ++state->in_flight;
  return Admission([state = std::move(state)] {
    std::lock_guard release(state->mu);
    --state->in_flight;
  });
}

std::shared_ptr<const TenantPolicy> TenantRules::PolicyOf(std::string_view tenant) const {
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return nullptr;
  std::lock_guard lock(state->mu);
  return state->policy;
}

std::optional<uint64_t> TenantRules::MaxKeys(std::string_view tenant) const {
  std::shared_ptr<const TenantPolicy> policy = PolicyOf(tenant);
  return policy ? policy->max_keys : std::nullopt;
}

Status TenantRules::TakeDataKeys(std::string_view tenant, uint64_t count) {
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return OkStatus();
  const int64_t now = now_nanos_() / kNanosPerSecond;
  std::lock_guard lock(state->mu);
  if (state->policy == nullptr) return OkStatus();
  Status taken = state->data_keys.Take(state->policy->max_data_keys_per_day, now, count);
  if (taken.ok()) return taken;
  Status refused(taken.code(), "tenant '" + std::string(tenant) + "': " + taken.message());
  if (auto ms = taken.retry_after_ms()) refused = std::move(refused).WithRetryAfter(*ms);
  return refused;
}

}  // namespace kmsd
