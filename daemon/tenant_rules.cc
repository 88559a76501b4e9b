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

Status Unreadable(std::string_view tenant) {
  return Status(Code::kInternal, "tenant '" + std::string(tenant) +
                                     "': the stored policy does not read; put a new one");
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
    Result<std::shared_ptr<const TenantPolicy>> policy = PolicyOf(record->tenant);
    if (!policy || *policy == nullptr) continue;  // logged by StateOf
    if (Status applied = ApplyRotationCeiling(record->tenant, policy->get()); !applied.ok()) {
      spdlog::error("tenant {}: policy's key_rotation_days not applied: {}", record->tenant,
                    applied.ToString());
    }
  }
}

std::shared_ptr<TenantRules::State> TenantRules::SlotOf(std::string_view tenant) const {
  {
    std::shared_lock lock(mu_);
    if (auto it = states_.find(tenant); it != states_.end()) return it->second;
  }
  std::unique_lock lock(mu_);
  std::shared_ptr<State>& slot = states_[std::string(tenant)];
  if (slot == nullptr) slot = std::make_shared<State>();
  return slot;
}

void TenantRules::Install(State& state, std::shared_ptr<const TenantPolicyRecord> record,
                          std::shared_ptr<const TenantPolicy> policy) const {
  std::lock_guard lock(state.mu);
  if (state.source == record) return;
  // Counters stay; the bucket holds no more than the new burst.
  if (policy != nullptr) state.rate.Rebase(policy->rate, now_nanos_());
  state.source = std::move(record);
  state.policy = std::move(policy);
}

std::shared_ptr<TenantRules::State> TenantRules::StateOf(std::string_view tenant) const {
  if (!directory_.AnyPolicy()) return nullptr;
  std::shared_ptr<const TenantPolicyRecord> record = directory_.PolicyOf(tenant);
  if (record == nullptr) return nullptr;
  std::shared_ptr<State> state = SlotOf(tenant);
  {
    std::lock_guard lock(state->mu);
    if (state->source == record) return state;
  }
  // A document Put did not install (start-up): read it outside the lock.
  std::shared_ptr<const TenantPolicy> policy;
  if (auto parsed = ParseTenantPolicy(record->document, tenant)) {
    policy = std::make_shared<const TenantPolicy>(std::move(parsed->policy));
  } else {
    spdlog::error(
        "tenant {}: the stored policy does not read ({}); its principals are refused "
        "until a new one is put",
        tenant, parsed.error().ToString());
  }
  // Only the directory's current record: a newer one may have been put.
  if (directory_.PolicyOf(tenant) == record) Install(*state, std::move(record), std::move(policy));
  return state;
}

Status TenantRules::ApplyRotationCeiling(std::string_view tenant, const TenantPolicy* policy) {
  std::optional<int64_t> ceiling;
  if (policy != nullptr && policy->key_rotation_days) {
    ceiling = int64_t{*policy->key_rotation_days} * 86400;
  }
  return hierarchy_.SetRotationCeiling(tenant, ceiling);
}

Result<TenantPolicyView> TenantRules::Put(std::string_view tenant, std::string_view document,
                                          bool may_loosen) {
  ASSIGN_OR_RETURN(ParsedTenantPolicy parsed, ParseTenantPolicy(document, tenant));
  std::lock_guard put(put_mu_);
  if (!may_loosen) {
    ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicy> current, PolicyOf(tenant));
    // Without a policy, the defaults are in force: no limits, but every
    // audit entry kept for ever with every detail.
    const TenantPolicy defaults;
    if (auto field = LoosenedField(current != nullptr ? *current : defaults, parsed.policy)) {
      return Error(Code::kAccessDenied,
                   "a tenant's principal may only tighten its policy: " + *field +
                       " would allow more than the policy in force (an admin may loosen it)");
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicyRecord> record,
                   directory_.PutTenantPolicy(tenant, std::string(document)));
  auto policy = std::make_shared<const TenantPolicy>(parsed.policy);
  Install(*SlotOf(tenant), record, policy);
  if (Status applied = ApplyRotationCeiling(tenant, policy.get()); !applied.ok()) {
    // Stored and in force for requests; only a tenant shredded meanwhile.
    spdlog::error("tenant {}: policy's key_rotation_days not applied: {}", tenant,
                  applied.ToString());
  }
  spdlog::info("tenant {}: policy put ({} bytes, {} notes)", tenant, document.size(),
               parsed.notes.size());
  return TenantPolicyView{std::move(record), std::move(parsed.notes)};
}

Result<TenantPolicyView> TenantRules::Get(std::string_view tenant) const {
  TenantPolicyView view;
  view.record = directory_.PolicyOf(tenant);
  if (view.record == nullptr) return view;
  auto parsed = ParseTenantPolicy(view.record->document, tenant);
  if (!parsed) {
    return Error(Code::kInternal,
                 "tenant '" + std::string(tenant) +
                     "': the stored policy does not read: " + parsed.error().message());
  }
  view.notes = std::move(parsed->notes);
  return view;
}

Result<Admission> TenantRules::Admit(RequestContext& context) {
  if (!context.principal) return Admission();
  // A principal's request without a tenant (status, generate-random) is its
  // tenant's too.
  const std::string& tenant = context.tenant.empty() ? context.principal->tenant : context.tenant;
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return Admission();
  const int64_t now = now_nanos_();
  std::unique_lock lock(state->mu);
  if (state->policy == nullptr) return Error(Unreadable(tenant));
  const TenantPolicy& policy = *state->policy;
  if (policy.allowed_peers && !policy.allowed_peers->Contains(context.caller)) {
    return Error(Denied(context, "tenant '" + tenant + "' does not allow uid " +
                                     std::to_string(context.caller.uid) +
                                     ": not among its policy's allowed_peers"));
  }
  if (!WithinTimeWindows(policy.time_windows, now / kNanosPerSecond)) {
    return Error(
        Denied(context, "tenant '" + tenant + "' is outside its policy's time_windows now"));
  }
  if (policy.mfa_required && context.op != nullptr && NeedsMfa(context.op->permission) &&
      !context.principal->mfa) {
    return Error(Denied(context, "tenant '" + tenant + "' requires MFA for '" +
                                     std::string(context.op->name) +
                                     "': open a session with a TOTP code (kmsctl login --totp)"));
  }
  if (policy.max_concurrent_requests && state->in_flight >= *policy.max_concurrent_requests) {
    return Error(Status(Code::kThrottled, "tenant '" + tenant + "' has " +
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

Result<std::shared_ptr<const TenantPolicy>> TenantRules::PolicyOf(std::string_view tenant) const {
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return std::shared_ptr<const TenantPolicy>();
  std::lock_guard lock(state->mu);
  if (state->policy == nullptr) return Error(Unreadable(tenant));
  return state->policy;
}

Result<std::optional<uint64_t>> TenantRules::MaxKeys(std::string_view tenant) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicy> policy, PolicyOf(tenant));
  return policy ? policy->max_keys : std::nullopt;
}

Status TenantRules::TakeDataKeys(std::string_view tenant, uint64_t count) {
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return OkStatus();
  const int64_t now = now_nanos_() / kNanosPerSecond;
  std::lock_guard lock(state->mu);
  if (state->policy == nullptr) return Unreadable(tenant);
  Status taken = state->data_keys.Take(state->policy->max_data_keys_per_day, now, count);
  if (taken.ok()) return taken;
  Status refused(taken.code(), "tenant '" + std::string(tenant) + "': " + taken.message());
  if (auto ms = taken.retry_after_ms()) refused = std::move(refused).WithRetryAfter(*ms);
  return refused;
}

void TenantRules::GiveDataKeys(std::string_view tenant, uint64_t count) {
  std::shared_ptr<State> state = StateOf(tenant);
  if (state == nullptr) return;
  const int64_t now = now_nanos_() / kNanosPerSecond;
  std::lock_guard lock(state->mu);
  state->data_keys.Give(now, count);
}

}  // namespace kmsd
