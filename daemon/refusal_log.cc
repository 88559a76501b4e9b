#include "daemon/refusal_log.h"

namespace kmsd {

std::optional<std::string> RefusalLog::Record(const Refusal& refusal, Clock::time_point now) {
  ++total_;
  ++unreported_;
  latest_uid_ = refusal.uid;
  latest_pid_ = refusal.pid;
  latest_reason_ = std::string(refusal.reason.substr(0, 120));
  return Flush(now);
}

std::optional<std::string> RefusalLog::Flush(Clock::time_point now) {
  if (unreported_ == 0) return std::nullopt;
  if (last_line_ && now - *last_line_ < interval_) return std::nullopt;
  last_line_ = now;
  return Line();
}

std::string RefusalLog::Line() {
  std::string line = "refused " + std::to_string(unreported_) +
                     (unreported_ == 1 ? " connection" : " connections") +
                     " since the last report (" + std::to_string(total_) +
                     " in all); latest: uid " + std::to_string(latest_uid_) + " pid " +
                     std::to_string(latest_pid_) + ", " + latest_reason_;
  unreported_ = 0;
  return line;
}

}  // namespace kmsd
