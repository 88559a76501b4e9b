// Verify: checks an audit directory as docs/AUDIT.md specifies, entry by
// entry, and stops at the first problem, naming its file, line and entry:
// a line that is not an entry, an entry out of sequence (one removed, two
// swapped), a chain hash that does not follow (an entry edited), an "open"
// entry that does not continue the chain or names another file, a seal whose
// MAC the token does not confirm (resealed with another key), a torn line not
// declared by the next file, a note by kmsd that the log did not match the
// token at start, and a log that ends before the head sealed in the token (a
// tail cut, an older copy put back) or whose entry there differs.
//
// Reads the files once, one at a time; the seals' MACs are checked by the
// Sealer (the token). Thread-safe for distinct Sealer calls.
#pragma once

#include <optional>
#include <string>

#include "daemon/audit/sealer.h"

namespace kmsd::audit {

struct VerifyScope {
  std::string dir;
  // The live log: read its last file only up to what was written when the
  // verification began.
  std::optional<std::string> last_file;
  uint64_t last_file_bytes = 0;
  SealedHead token;
  // kmsd's start: an incomplete last line (a crash) is not a problem; the
  // next file's open entry declares it.
  bool torn_last_allowed = false;
};

struct Problem {
  std::string file;   // empty when no file is at fault (the token's head)
  uint64_t line = 0;  // 1-based; 0 when no line is
  uint64_t seq = 0;   // the entry expected there; 0 when none
  std::string message;
};

struct VerifyReport {
  uint64_t files = 0;
  uint64_t entries = 0;
  uint64_t requests = 0;
  uint64_t seals = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t sealed_through = 0;  // the last entry a seal in the log covers
  // Entries (other than seals) no seal covers yet: written since the last
  // commit, or added by someone who can compute SHA-256 but not a seal.
  uint64_t unsealed = 0;
  uint64_t pruned = 0;  // request entries replaced by their digest (retention)
  SealedHead token;
  std::optional<Problem> problem;
  bool ok() const { return !problem.has_value(); }
};

// NOT_FOUND or INTERNAL when the directory cannot be read; a report (with or
// without a problem) otherwise.
Result<VerifyReport> Verify(const VerifyScope& scope, Sealer& sealer);

}  // namespace kmsd::audit
