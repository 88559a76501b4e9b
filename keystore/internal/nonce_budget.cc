#include "keystore/internal/nonce_budget.h"

#include <algorithm>

namespace kmsd::keystore_internal {

Result<bool> NonceBudget::Count(KeyStore& store, const KeyId& key_id, uint32_t version,
                                uint64_t limit) {
  const uint64_t number = used_.fetch_add(1) + 1;
  if (number > limit) return false;
  if (number <= reserved_.load(std::memory_order_acquire)) return true;
  std::lock_guard lock(reserve_mu_);
  const uint64_t reserved = reserved_.load(std::memory_order_acquire);
  if (number <= reserved) return true;
  // Blocks of 1/64 of the limit (at most 65536): one keystore write per block,
  // and a crash costs at most one block of the version's budget.
  const uint64_t block = std::clamp<uint64_t>(limit / 64, 1, 65536);
  const uint64_t count = std::min(limit, std::max(number, reserved + block)) - reserved;
  ASSIGN_OR_RETURN(const uint64_t end, store.ReserveEncryptionRange(key_id, version, count));
  // This process's range is (end - count, end]; another process may have
  // reserved before it, so only the part within the limit counts.
  const uint64_t start = end - count;
  const uint64_t granted = start >= limit ? 0 : std::min(end, limit) - start;
  reserved_.store(reserved + granted, std::memory_order_release);
  return number <= reserved + granted;
}

}  // namespace kmsd::keystore_internal
