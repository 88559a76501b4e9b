#include "tools/kmsctl/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kmsd::kmsctl {

Progress::Progress(bool enabled, std::string what, std::optional<uint64_t> total_bytes)
    : shown_(enabled && ::isatty(STDERR_FILENO) == 1),
      what_(std::move(what)),
      total_(total_bytes) {}

Progress::~Progress() { Finish(); }

std::string Progress::Bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char out[32];
  std::snprintf(out, sizeof out, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return out;
}

void Progress::Add(uint64_t bytes, uint64_t files) {
  bytes_ += bytes;
  files_ += files;
  if (!shown_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - drawn_ < std::chrono::milliseconds(250)) return;
  drawn_ = now;
  Draw();
}

void Progress::Draw() {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(bytes_) / seconds : 0;
  std::string line = what_ + ": ";
  if (files_ > 0) line += std::to_string(files_) + " files, ";
  line += Bytes(static_cast<double>(bytes_));
  if (total_ && *total_ > 0) {
    line += " of " + Bytes(static_cast<double>(*total_));
    char percent[16];
    std::snprintf(percent, sizeof percent, " (%.0f%%)",
                  100.0 * static_cast<double>(bytes_) / static_cast<double>(*total_));
    line += percent;
  }
  line += ", " + Bytes(rate) + "/s";
  if (total_ && rate > 0 && *total_ > bytes_) {
    const auto left = static_cast<long>(static_cast<double>(*total_ - bytes_) / rate);
    char eta[32];
    std::snprintf(eta, sizeof eta, ", %ld:%02ld left", left / 60, left % 60);
    line += eta;
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  visible_ = true;
}

void Progress::Finish() {
  if (!visible_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  visible_ = false;
}

}  // namespace kmsd::kmsctl
