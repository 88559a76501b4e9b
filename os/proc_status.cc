#include "os/proc_status.h"

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

namespace kmsd {
namespace {

// The whitespace-separated unsigned numbers of one line.
std::vector<uint64_t> Numbers(std::string_view line) {
  std::vector<uint64_t> out;
  size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
    if (at == line.size()) break;
    uint64_t value = 0;
    auto [end, error] = std::from_chars(line.data() + at, line.data() + line.size(), value);
    if (error != std::errc() || end == line.data() + at) return {};
    out.push_back(value);
    at = static_cast<size_t>(end - line.data());
  }
  return out;
}

// The rest of the line that starts with `key` ("Uid:"), or nullopt.
std::optional<std::string_view> Field(std::string_view text, std::string_view key) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(at, end - at);
    if (line.starts_with(key)) return line.substr(key.size());
    at = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::vector<uint64_t> GroupsFromProcStatus(std::string_view status, uint64_t uid) {
  const auto uid_field = Field(status, "Uid:");
  const auto groups_field = Field(status, "Groups:");
  if (!uid_field || !groups_field) return {};
  // Uid: real, effective, saved set, file system.
  const std::vector<uint64_t> uids = Numbers(*uid_field);
  if (uids.size() != 4 || uids[1] != uid) return {};
  return Numbers(*groups_field);
}

std::vector<uint64_t> ReadSupplementaryGroups(uint64_t pid, uint64_t uid) {
  if (pid == 0) return {};
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return GroupsFromProcStatus(text.str(), uid);
}

}  // namespace kmsd
