// RefusalLog: counts connections kmsd refused and rations the log lines about
// them, so that a peer refused in a loop cannot flood the log.
//
// At most one line per `interval`: the first refusal after a quiet interval is
// reported at once; later ones are summed into the next line (on the next
// refusal, or on Flush once the interval has passed), which names how many were
// refused since the previous line and who was refused last. Time is passed in,
// never read, so tests drive it. Not thread-safe: its owner serializes calls.
// Copyable value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kmsd {

class RefusalLog {
 public:
  using Clock = std::chrono::steady_clock;

  struct Refusal {
    uint64_t uid = 0;
    uint64_t pid = 0;
    std::string_view reason;  // e.g. "not allowed to use kmsd"
  };

  explicit RefusalLog(Clock::duration interval) : interval_(interval) {}

  // Counts one refusal at `now`; returns the line to log now, or nullopt when a
  // line was logged less than `interval` ago (this refusal is then in the next).
  std::optional<std::string> Record(const Refusal& refusal, Clock::time_point now);
  // The line for refusals not yet logged, once `interval` has passed since
  // the last line; nullopt when there are none or it is too early.
  std::optional<std::string> Flush(Clock::time_point now);
  // Every refusal ever recorded.
  uint64_t total() const { return total_; }

 private:
  std::string Line();

  Clock::duration interval_;
  std::optional<Clock::time_point> last_line_;
  uint64_t total_ = 0;
  uint64_t unreported_ = 0;
  uint64_t latest_uid_ = 0;
  uint64_t latest_pid_ = 0;
  std::string latest_reason_;
};

}  // namespace kmsd
