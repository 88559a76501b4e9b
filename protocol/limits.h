// Limits of protocol v1 that both ends check (docs/PROTOCOL.md): the daemon
// refuses what is over them, kmsctl and the client split or refuse before
// sending.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmsd {

// Items in one batch-* request.
inline constexpr size_t kMaxBatchItems = 1024;
// Bytes of one generate-random, or of a data key given by number_of_bytes.
inline constexpr uint64_t kMaxRandomBytes = 1024;

}  // namespace kmsd
