// A key version's nonce budget (DESIGN.md invariant 6): AES-GCM with random
// 96-bit nonces allows at most 2^32 encryptions per key (NIST SP 800-38D),
// and a nonce must never repeat, also across a crash.
//
// Contract. Each encryption is counted before it is made. Counts are covered
// by ranges reserved durably in the keystore (KeyStore::ReserveEncryptionRange,
// one atomic UPDATE ... RETURNING) before they are used: a crash loses at most
// the rest of a range (it over-counts, never under-counts), and two processes
// sharing a keystore never get the same range. What the keystore had reserved
// when the version was loaded counts as used. Only the part of a range within
// the limit counts, so all processes together stay within it. The encryption
// that would pass the limit is refused (false): the caller rotates first.
//
// Thread-safe, and called without the catalog's lock: the reservation is a
// durable keystore write (an fsync), made under this version's own mutex, so
// it holds up no other version and no catalog change.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "keystore/store.h"
#include "protocol/status.h"

namespace kmsd::keystore_internal {

class NonceBudget {
 public:
  explicit NonceBudget(uint64_t reserved_at_load)
      : used_(reserved_at_load), reserved_(reserved_at_load) {}
  NonceBudget(const NonceBudget&) = delete;
  NonceBudget& operator=(const NonceBudget&) = delete;

  // Counts one encryption of (key_id, version), reserving a range in `store`
  // first when this process's reservation is used up. False when the version
  // reached `limit` (1 .. 2^32).
  Result<bool> Count(KeyStore& store, const KeyId& key_id, uint32_t version, uint64_t limit);

  // Encryptions counted so far: begun here (those beyond the limit were
  // refused) plus what was reserved at load.
  uint64_t used() const { return used_.load(); }

 private:
  std::atomic<uint64_t> used_;      // lock-free: fetch_add per encryption
  std::atomic<uint64_t> reserved_;  // stored under reserve_mu_, read without it
  std::mutex reserve_mu_;           // one reservation of this version at a time
};

}  // namespace kmsd::keystore_internal
