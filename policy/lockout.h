// FailedAttempts: failed authentication attempts (an API key, a session
// token, a TOTP code) counted per subject (a peer, a principal), and the
// lockout they earn: from the `threshold`-th failure within `window` on, the
// subject is locked out for a delay that doubles with each further failure
// (first_delay, 2 x first_delay, ...), at most max_delay. A success forgets
// the subject's failures, and so does a quiet `window`: no failure and no
// lockout for that long (a guesser that waits out each delay is never quiet,
// so its delay keeps doubling).
// Memory is bounded: at most `max_subjects` are remembered (the one least
// recently failed is forgotten first, never one that is locked out while
// another is not).
//
// Pure over the caller's clock (milliseconds, monotonic); not synchronized:
// the owner locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

struct LockoutOptions {
  uint32_t threshold = 5;
  int64_t window_ms = 10 * 60 * 1000;
  int64_t first_delay_ms = 1000;
  int64_t max_delay_ms = 15 * 60 * 1000;
  size_t max_subjects = 10000;
};

class FailedAttempts {
 public:
  explicit FailedAttempts(LockoutOptions options = {});

  // OK, or ACCESS_DENIED naming `subject` ("... locked out for N s after M
  // failed attempts") with retry_after_ms, while it is locked out.
  Status Check(std::string_view subject, int64_t now_ms) const;

  struct Counted {
    uint32_t failures = 0;                   // within the window, this one included
    std::optional<int64_t> locked_until_ms;  // set when this failure locks
    bool newly_locked = false;               // this failure crossed the threshold: alert
  };
  Counted Failed(std::string_view subject, int64_t now_ms);
  void Succeeded(std::string_view subject);
  size_t size() const { return subjects_.size(); }

 private:
  struct Subject {
    uint32_t failures = 0;
    int64_t first_failure_ms = 0;
    int64_t last_failure_ms = 0;
    int64_t locked_until_ms = 0;
  };
  void Evict(int64_t now_ms);
  bool Quiet(const Subject& s, int64_t now_ms) const;

  LockoutOptions options_;
  std::map<std::string, Subject, std::less<>> subjects_;
};

}  // namespace kmsd
