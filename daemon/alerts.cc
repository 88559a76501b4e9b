#include "daemon/alerts.h"

#include <spdlog/spdlog.h>

#include "os/system.h"

namespace kmsd {
namespace {

constexpr std::chrono::seconds kQuietPerSubject{60};
// Subjects remembered for the once-a-minute rule; beyond this the oldest
// quiet ones are forgotten (a flood of subjects cannot grow memory).
constexpr size_t kMaxRememberedSubjects = 4096;

constexpr std::array<AlertKindInfo, kAlertKinds> kKinds = {{
    {AlertKind::kRepeatedDenials, "repeated_denials", "c99a63e18dec47339a63ac5b10fe09ef", 4,
     "security"},
    {AlertKind::kLockout, "lockout", "2567e05329a4464eb11a51df838b745a", 4, "security"},
    {AlertKind::kQuotaExceeded, "quota_exceeded", "4a837de50980419e8ef6e8fc33cfafad", 5, "quota"},
    {AlertKind::kRateLimited, "rate_limited", "a7230161aefe451f8416bf7bc67b5006", 5, "quota"},
    {AlertKind::kAuditWriteFailure, "audit_write_failure", "99566f90377a49299a78e80486a4c9b3", 2,
     "health"},
    {AlertKind::kTokenUnavailable, "token_unavailable", "7e61de7d3b3744259a67d27f1b3f51d5", 2,
     "health"},
    {AlertKind::kRotationOverdue, "rotation_overdue", "022fd72bec7947d3bc6d75c32f7230ee", 4,
     "health"},
    {AlertKind::kShreddingFailed, "shredding_failed", "a3740c45851b415ea7e2ef8924fcfe24", 3,
     "health"},
}};

const AlertKindInfo& InfoOf(AlertKind kind) { return kKinds[static_cast<size_t>(kind)]; }

}  // namespace

const std::array<AlertKindInfo, kAlertKinds>& AlertKinds() { return kKinds; }

void Alerts::Raise(AlertKind kind, std::string_view subject, std::string_view message) {
  counts_[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point now = now_();
  uint64_t held_back = 0;
  {
    std::lock_guard lock(mu_);
    auto key = std::make_pair(kind, std::string(subject));
    auto it = told_.find(key);
    if (it != told_.end() && now - it->second.at < kQuietPerSubject) {
      ++it->second.held_back;
      return;
    }
    if (it == told_.end()) {
      if (told_.size() >= kMaxRememberedSubjects) {
        std::erase_if(told_, [&](const auto& entry) {
          return now - entry.second.at >= kQuietPerSubject && entry.second.held_back == 0;
        });
      }
      it = told_.emplace(std::move(key), Told{}).first;
    }
    held_back = it->second.held_back;
    it->second = Told{.at = now, .held_back = 0};
  }
  const AlertKindInfo& info = InfoOf(kind);
  std::string text(message);
  if (held_back > 0) text += " (and " + std::to_string(held_back) + " more in the last minute)";
  spdlog::warn("ALERT: {} [{}]", text, info.name);
  CurrentSystem().Journal({"MESSAGE=kmsd alert " + std::string(info.name) + ": " + text,
                           "PRIORITY=" + std::to_string(info.priority),
                           "MESSAGE_ID=" + std::string(info.message_id), "SYSLOG_IDENTIFIER=kmsd",
                           "KMSD_ALERT=" + std::string(info.name),
                           "KMSD_ALERT_CATEGORY=" + std::string(info.category),
                           "KMSD_SUBJECT=" + std::string(subject)});
}

void Alerts::Observe(const RequestContext& context) {
  const std::string op(context.op_name);
  switch (context.outcome.code()) {
    case Code::kAccessDenied: {
      bool repeated = false;
      {
        std::lock_guard lock(mu_);
        auto& times = denials_by_uid_[context.caller.uid];
        const Clock::time_point now = now_();
        times.push_back(now);
        while (!times.empty() && now - times.front() > kDenialWindow) times.pop_front();
        repeated = times.size() >= kDenialThreshold;
        if (repeated) times.clear();
        if (denials_by_uid_.size() > kMaxRememberedSubjects) {
          std::erase_if(denials_by_uid_, [&](const auto& entry) {
            return entry.second.empty() || now - entry.second.back() > kDenialWindow;
          });
        }
      }
      if (repeated) {
        const std::string peer = "uid " + std::to_string(context.caller.uid);
        Raise(AlertKind::kRepeatedDenials, peer,
              peer + " (pid " + std::to_string(context.caller.pid) + ") was refused " +
                  std::to_string(kDenialThreshold) + " times within a minute (last: " + op + ": " +
                  context.outcome.message() + ")");
      }
      return;
    }
    case Code::kQuotaExceeded:
    case Code::kThrottled: {
      const std::string tenant = context.tenant.empty() ? "(no tenant)" : context.tenant;
      Raise(context.outcome.code() == Code::kQuotaExceeded ? AlertKind::kQuotaExceeded
                                                           : AlertKind::kRateLimited,
            tenant, "tenant " + tenant + ": " + op + ": " + context.outcome.message());
      return;
    }
    case Code::kAuditUnavailable:
      Raise(AlertKind::kAuditWriteFailure, "audit log", context.outcome.message());
      return;
    case Code::kTokenUnavailable:
      Raise(AlertKind::kTokenUnavailable, "token", context.outcome.message());
      return;
    default:
      return;
  }
}

std::vector<ops::AlertCount> Alerts::Snapshot() const {
  std::vector<ops::AlertCount> out;
  for (const AlertKindInfo& info : kKinds) {
    out.push_back(
        {.kind = std::string(info.name),
         .count = counts_[static_cast<size_t>(info.kind)].load(std::memory_order_relaxed)});
  }
  return out;
}

}  // namespace kmsd
