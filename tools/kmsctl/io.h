// kmsctl's file input and output for data: plaintexts, ciphertexts, random
// bytes.
//
// A path that is empty or "-" means stdin / stdout. Input is read whole into a
// SecretBuffer (it may be a plaintext), at most kMaxInputBytes. A file output
// is written to a new temporary file (mode 0600) in the target's directory,
// flushed, and renamed over the target only when complete, so a failed
// command never creates or truncates its output. Stateless functions.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd::kmsctl {

// The unpacker's limit for one binary value; kmsd's frame limit is lower.
inline constexpr size_t kMaxInputBytes = 64 * 1024 * 1024;

bool IsStdio(const std::string& path);

// INVALID_ARGUMENT when the file cannot be read or is too large.
Result<SecretBuffer> ReadInput(const std::string& path);

// Checks, before anything is sent, that `path` could be written: its
// directory exists and is writable and it is not a directory.
// INVALID_ARGUMENT otherwise. OK for stdout.
Status CheckOutputPath(const std::string& path);

// Writes `bytes` to stdout or, atomically, to the file `path`. INTERNAL on
// failure.
Status WriteOutput(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace kmsd::kmsctl
