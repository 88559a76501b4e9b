// The audit directory's files: listing them in order and reading one.
// Plain functions; no state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocol/status.h"

namespace kmsd::audit {

struct LogFile {
  uint64_t first_seq = 0;
  std::string name;
};

// The log files in `dir` (names FileName(seq)), by first seq; other names
// are left out. NOT_FOUND or INTERNAL when `dir` cannot be read.
Result<std::vector<LogFile>> ListLogFiles(const std::string& dir);

// The file's bytes, at most `limit` of them; never follows a symlink.
Result<std::string> ReadLogFile(const std::string& dir, const std::string& name,
                                std::optional<uint64_t> limit = std::nullopt);

// The complete lines of `content` (without their LF), and the length of an
// unfinished last line (bytes after the last LF).
struct Lines {
  std::vector<std::string_view> lines;
  size_t torn_bytes = 0;
};
Lines SplitLines(std::string_view content);

}  // namespace kmsd::audit
