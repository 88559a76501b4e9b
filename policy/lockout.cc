// Failed attempts counted per subject until it has been quiet for `window_ms`:
// no failure, and no lockout, for that long. Then the failures are forgotten
// and the next one counts as the first. A guesser that waits out each delay
// and tries again is never quiet, so its delay keeps doubling to the maximum.
#include "policy/lockout.h"

#include <algorithm>
#include <limits>

namespace kmsd {
namespace {

// first_delay doubled once per failure past the threshold, at most max_delay.
int64_t DelayFor(const LockoutOptions& options, uint32_t failures, uint32_t threshold) {
  const int64_t max_delay = std::max<int64_t>(options.max_delay_ms, 0);
  int64_t delay = std::clamp<int64_t>(options.first_delay_ms, 0, max_delay);
  for (uint32_t i = threshold; i < failures && delay > 0 && delay < max_delay; ++i) {
    delay = delay > max_delay / 2 ? max_delay : delay * 2;
  }
  return delay;
}

}  // namespace

FailedAttempts::FailedAttempts(LockoutOptions options) : options_(options) {}

bool FailedAttempts::Quiet(const Subject& s, int64_t now_ms) const {
  const int64_t since = std::max(s.last_failure_ms, s.locked_until_ms);
  return now_ms - since >= options_.window_ms;
}

Status FailedAttempts::Check(std::string_view subject, int64_t now_ms) const {
  auto it = subjects_.find(subject);
  if (it == subjects_.end() || now_ms >= it->second.locked_until_ms) return OkStatus();
  const int64_t remaining_ms = it->second.locked_until_ms - now_ms;
  const int64_t remaining_s = (remaining_ms + 999) / 1000;
  const auto retry_after =
      static_cast<uint32_t>(std::min<int64_t>(remaining_ms, std::numeric_limits<uint32_t>::max()));
  return Status(Code::kAccessDenied, std::string(subject) + " is locked out for " +
                                         std::to_string(remaining_s) + " s after " +
                                         std::to_string(it->second.failures) + " failed attempts")
      .WithRetryAfter(retry_after);
}

FailedAttempts::Counted FailedAttempts::Failed(std::string_view subject, int64_t now_ms) {
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) {
    Evict(now_ms);
    it = subjects_.emplace(std::string(subject), Subject{}).first;
  }
  Subject& s = it->second;
  if (s.failures > 0 && Quiet(s, now_ms)) s.failures = 0;
  if (s.failures == 0) s.first_failure_ms = now_ms;
  if (s.failures < std::numeric_limits<uint32_t>::max()) ++s.failures;
  s.last_failure_ms = now_ms;

  Counted counted;
  counted.failures = s.failures;
  const uint32_t threshold = std::max<uint32_t>(options_.threshold, 1);
  if (s.failures >= threshold) {
    const int64_t delay = DelayFor(options_, s.failures, threshold);
    const int64_t until = delay > std::numeric_limits<int64_t>::max() - now_ms
                              ? std::numeric_limits<int64_t>::max()
                              : now_ms + delay;
    s.locked_until_ms = std::max(s.locked_until_ms, until);
    counted.locked_until_ms = s.locked_until_ms;
    counted.newly_locked = s.failures == threshold;
  }
  return counted;
}

void FailedAttempts::Succeeded(std::string_view subject) {
  auto it = subjects_.find(subject);
  if (it != subjects_.end()) subjects_.erase(it);
}

// Makes room for one more subject: forgets those whose failures have left the
// window and whose lockout is over, then, while still full, the one least
// recently failed among those not locked out (among the locked out only when
// every subject is).
void FailedAttempts::Evict(int64_t now_ms) {
  const size_t capacity = std::max<size_t>(options_.max_subjects, 1);
  if (subjects_.size() < capacity) return;
  std::erase_if(subjects_, [&](const auto& entry) {
    const Subject& s = entry.second;
    return Quiet(s, now_ms) && now_ms >= s.locked_until_ms;
  });
  while (subjects_.size() >= capacity) {
    auto victim = subjects_.end();
    bool victim_locked = true;
    for (auto it = subjects_.begin(); it != subjects_.end(); ++it) {
      const bool locked = now_ms < it->second.locked_until_ms;
      if (victim == subjects_.end() || (victim_locked && !locked) ||
          (victim_locked == locked &&
           it->second.last_failure_ms < victim->second.last_failure_ms)) {
        victim = it;
        victim_locked = locked;
      }
    }
    subjects_.erase(victim);
  }
}

}  // namespace kmsd
