// Unique random bytes for message ids and IVs, from a pool per thread.
//
// RAND_bytes costs about 3 us a call on the development VM (a getpid for its
// fork check, the DRBG's locks), half of a message encrypted with a cached
// data key; the pool asks it for a page at a time. The pool's page is wiped
// in a forked child (MADV_WIPEONFORK), which then refills it from its own,
// reseeded DRBG: parent and child never hand out the same bytes, which would
// repeat a derived key and its IVs under a cached data key. Where the kernel
// refuses that (before 4.14), every call goes to RAND_bytes.
//
// Not for secrets: the page is neither locked nor kept out of core dumps
// (message ids and IVs are written into every message in the clear).
#pragma once

#include <cstdint>
#include <span>

#include "protocol/status.h"

namespace kmsd::esdk {

// Fills `out` with bytes no other call in this process or its forks returns.
Status FillUniqueRandom(std::span<uint8_t> out);

}  // namespace kmsd::esdk
