// Lifecycle limits that are part of the protocol: the window between a
// schedule-deletion and the shredding of a key or tenant is 7 to 30 days, 30
// unless the caller says otherwise, as in AWS KMS (docs/PROTOCOL.md,
// "Pending window"). The daemon enforces them, the keystore checks them again,
// kmsctl's help states them; they are written here once. Constants only.
#pragma once

#include <cstdint>

namespace kmsd {

inline constexpr int64_t kSecondsPerDay = 86400;

inline constexpr int64_t kMinPendingWindowDays = 7;  // lowerable in seconds by configuration
inline constexpr int64_t kMaxPendingWindowDays = 30;
inline constexpr int64_t kDefaultPendingWindowDays = kMaxPendingWindowDays;

}  // namespace kmsd
