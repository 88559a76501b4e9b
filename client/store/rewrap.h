// Re-wrapping stored files after a rotation: each file's kmsd EDKs move to
// the newest version of their key, its header is re-authenticated, and its
// body stays as it is (client/esdk/rewrap.h says why the data key passes
// through this process for that, and why signed messages cannot be
// re-wrapped). Other EDKs (an escrow copy) are kept: the data key is the same.
//
// Files go to kmsd in batches (one batch-re-encrypt of their EDKs, then one
// batch-decrypt of the EDKs of the files whose key has a newer version); a
// file already under the newest version is left untouched. Each file is
// replaced atomically (temporary file, fsync, rename, fsync of the
// directory) and only if it is still the file that was read: the rename is
// made under the tenant's lock, which writers also take to rename, so a
// file written meanwhile is never replaced by an older one. A file that
// fails is reported with its status and left as it was; the others go on.
// Used by one thread at a time.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "client/connection.h"
#include "client/store/tenant_store.h"

namespace kmsd::store {

struct RewrapOptions {
  size_t batch = 256;  // files per kmsd request (at most kMaxBatchItems)
};

struct RewrapSummary {
  uint64_t rewrapped = 0;  // files whose EDKs moved
  uint64_t current = 0;    // files already under their key's newest version
  std::vector<std::pair<std::string, Status>> failed;
};

Result<RewrapSummary> Rewrap(const TenantStore& store, Connection& connection,
                             const std::vector<std::string>& names, const RewrapOptions& options);

}  // namespace kmsd::store
