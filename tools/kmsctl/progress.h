// Progress of long work on a terminal: bytes (and files) done, the rate and
// the time left when the total is known, redrawn on one stderr line at most
// four times a second and cleared at the end. Silent when stderr is not a
// terminal or the output is JSON, so scripts and pipes see nothing of it.
// Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace kmsd::kmsctl {

class Progress {
 public:
  // `enabled`: the caller's choice (false with --json); a terminal is also needed.
  Progress(bool enabled, std::string what, std::optional<uint64_t> total_bytes);
  ~Progress();
  void Add(uint64_t bytes, uint64_t files = 0);
  // Clears the line (also done by the destructor).
  void Finish();

  // "1.5 MiB", "12.0 GiB": for messages too.
  static std::string Bytes(double bytes);

 private:
  void Draw();

  const bool shown_;
  const std::string what_;
  const std::optional<uint64_t> total_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drawn_{};
  uint64_t bytes_ = 0;
  uint64_t files_ = 0;
  bool visible_ = false;
};

}  // namespace kmsd::kmsctl
