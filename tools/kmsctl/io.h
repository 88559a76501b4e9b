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
#include <optional>
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

// Output written in pieces: to stdout, or to a temporary file (mode 0600)
// beside `path` that Commit() flushes and renames over it. A stream that
// is destroyed without Commit() removes its temporary file, and so does
// SIGINT, SIGTERM, SIGHUP or SIGQUIT while it is open (kmsctl then dies of
// the signal): the target is never created or changed by a failed command.
// One open at a time. Not thread-safe.
class OutputStream {
 public:
  static Result<OutputStream> Open(const std::string& path);
  OutputStream(OutputStream&& other) noexcept;
  OutputStream& operator=(OutputStream&&) = delete;
  ~OutputStream();
  Status Write(std::span<const uint8_t> bytes);
  Status Commit();

 private:
  OutputStream(std::string path, std::string temporary, int fd)
      : path_(std::move(path)), temporary_(std::move(temporary)), fd_(fd) {}
  std::string path_;
  std::string temporary_;  // empty for stdout
  int fd_ = -1;
  bool committed_ = false;
};

// Input read in pieces from stdin or a file.
class InputStream {
 public:
  // INVALID_ARGUMENT when the file cannot be opened.
  static Result<InputStream> Open(const std::string& path);
  InputStream(InputStream&& other) noexcept;
  InputStream& operator=(InputStream&&) = delete;
  ~InputStream();
  // Up to buffer.size() bytes; 0 at the end.
  Result<size_t> Read(std::span<uint8_t> buffer);
  // The size of a regular file, or nullopt (stdin, a pipe).
  std::optional<uint64_t> size() const { return size_; }

 private:
  InputStream(std::string path, int fd, std::optional<uint64_t> size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_ = -1;
  std::optional<uint64_t> size_;
};

}  // namespace kmsd::kmsctl
