// kmsctl's exit codes that the end-to-end tests check (docs/CLI.md, "Exit
// status"), written once here rather than in each test.
#pragma once

namespace kmsd::testing {

inline constexpr int kUsageExit = 2;
inline constexpr int kAccessDeniedExit = 4;

}  // namespace kmsd::testing
