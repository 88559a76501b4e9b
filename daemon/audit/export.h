// Export: one tenant's audit entries for a period, with what verifies them
// on their own (docs/AUDIT.md, "Export"): the chain from a sealed head
// before them to a seal after them, where every other entry is given as its
// digest only. Read in pages (the reply of one request is bounded).
//
// Lines (JSON objects, one per line):
//   {"type":"export","tenant":T,"since":S,"until":U,"start_seq":N,"start_head":H}  (first page)
//   {"seq":n,"entry":"<the entry's bytes>"}   the tenant's entries, and every seal
//   {"seq":n,"digest":"<SHA-256 of the entry>"}  every other entry
// An entry is the tenant's when its "tenant" or its principal's tenant is T.
// Entries are in seq order; their times are the moments they were recorded
// and may be out of order by a few milliseconds, so the export goes on to
// the first seal stamped a second after `until` (or to the log's end).
//
// Plain function over the files; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "daemon/audit/verify.h"

namespace kmsd::audit {

struct ExportRequest {
  std::string tenant;
  std::string since;  // canonical times (entry.h's Rfc3339Micros); empty: open
  std::string until;
  std::optional<uint64_t> after_seq;  // a later page: the last seq of the page before
  size_t max_lines = 2000;
};

struct ExportPage {
  std::vector<std::string> lines;
  std::optional<uint64_t> next_after_seq;  // absent: this was the last page
  uint64_t entries = 0;                    // the tenant's entries in this page
};

// `scope` bounds what is read (the live log as it was when the export began).
Result<ExportPage> ExportTenant(const VerifyScope& scope, const ExportRequest& request);

}  // namespace kmsd::audit
