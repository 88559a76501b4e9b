// Helpers shared by the crash tests (crash_test.cc, migration_crash_test.cc):
// whether kmsd exited, reading its log and keeping a failed run's files. Not
// thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace kmsd::testing {

// True if the child exited already (without reaping it, so that its
// DaemonProcess still gets its status).
bool Exited(pid_t pid);

// The last `bytes` of the file at `path` (empty if it cannot be read).
std::string LogTail(const std::string& path, size_t bytes = 6000);

// Copies `from` (a temp dir holding a dev dir and kmsd's log, removed on exit)
// to $TMPDIR/<name>-<seed>, or /tmp/..., and says where on stderr.
void KeepForPostMortem(const std::filesystem::path& from, const std::string& name, uint64_t seed);

}  // namespace kmsd::testing
