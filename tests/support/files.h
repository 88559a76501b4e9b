// Whole files as strings, for tests. Thread-safe (no shared state).
#pragma once

#include <string>

namespace kmsd::testing {

// The file's bytes; empty if it cannot be read.
std::string ReadFileBytes(const std::string& path);
// Replaces the file's bytes (created if missing).
void WriteFileBytes(const std::string& path, const std::string& content);

}  // namespace kmsd::testing
