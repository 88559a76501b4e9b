// libFuzzer target: a tenant's policy document (policy/tenant_policy.h), the
// YAML of tenant.put-policy as the daemon reads it (the seeds' shapes:
// security_policies, resource_quotas, kmsd's own fields).
//
// ParseTenantPolicy for tenant "acme-manufacturing"; a policy that reads is
// then used as the daemon uses it: LoosenedField against itself and against
// the empty policy, WithinTimeWindows at a few instants, a RateLimiter taking
// requests and rebased. Any crash, sanitizer report, uncaught exception
// (yaml-cpp's included: the parser must catch them) or broken invariant
// (__builtin_trap) is a finding; among them: every refusal is
// INVALID_ARGUMENT, a policy is never looser than itself, a time window's
// fields are in their documented bounds.
//
// Seeds: corpus/tenant_policy/, the seed documents (tests/support/seed_policies.h)
// and kmsd's own fields.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/tenant_policy.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using kmsd::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kmsd;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseTenantPolicy(yaml, "acme-manufacturing");
  if (!parsed) {
    Check(parsed.error().code() == Code::kInvalidArgument);
    return 0;
  }
  const TenantPolicy& policy = parsed->policy;
  Check(!LoosenedField(policy, policy).has_value());
  (void)LoosenedField(TenantPolicy{}, policy);
  (void)LoosenedField(policy, TenantPolicy{});
  for (const TimeWindow& window : policy.time_windows) {
    Check(window.from_minute >= 0 && window.from_minute <= 1439);
    Check(window.until_minute >= 1 && window.until_minute <= 1440);
    Check(window.from_minute != window.until_minute);
    Check(window.utc_offset_minutes >= -14 * 60 && window.utc_offset_minutes <= 14 * 60);
  }
  for (int64_t t : {int64_t{0}, int64_t{1767225600}, int64_t{1767225600 + 86399}}) {
    (void)WithinTimeWindows(policy.time_windows, t);
  }
  RateLimiter limiter;
  int64_t now = 1767225600LL * 1'000'000'000;
  for (int i = 0; i < 4; ++i) {
    Status taken = limiter.Take(policy.rate, now);
    Check(taken.ok() || taken.code() == Code::kThrottled);
    now += 500'000'000;
  }
  limiter.Rebase(policy.rate, now);
  (void)limiter.Take(policy.rate, now);
  for (const PolicyNote& note : parsed->notes) Check(!note.field.empty());
  return 0;
}
