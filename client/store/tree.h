// Walking a tenant's tree (client/store/tenant_store.h): what it stores and
// what writes in flight have reserved. Directories are walked by descriptor,
// never following a symbolic link; entries that are neither files nor
// directories are skipped. Not synchronized: a writer holds the tenant's lock
// around a TallyTree with `reap`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "client/store/tenant_store.h"

namespace kmsd::store {

// Temporary files of writes in flight: PREFIX<16 hex>-<reserved bytes>-<n|r>
// (n: a new name, counted as a file; r: replacing one).
inline constexpr std::string_view kTemporaryPrefix = ".kmsd-tmp-";

struct Tally {
  Usage usage;                            // stored files and the reservations of writes in flight
  Usage reserved;                         // the reservations alone
  std::map<std::string, uint64_t> files;  // name -> plaintext bytes (else bytes on disk)
};

// With `reap`, the temporary files of writers that died are removed.
Result<Tally> TallyTree(const Beneath& directory, bool reap);
Result<std::vector<StoredFile>> ListTree(const Beneath& directory);

}  // namespace kmsd::store
