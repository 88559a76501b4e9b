#include "tests/support/esdk_vectors.h"

#include <gtest/gtest.h>

#include <fstream>

namespace kmsd::testing {

std::optional<esdk::Bytes> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  esdk::Bytes out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int high = nibble(hex[i]);
    const int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(high << 4 | low));
  }
  return out;
}

std::map<std::string, Vector> ReadVectors(const std::string& path) {
  std::ifstream file(path);
  EXPECT_TRUE(file.is_open()) << path;
  constexpr std::string_view kOpening = "```hex id=vector-";
  std::map<std::string, Vector> vectors;
  std::string line;
  while (std::getline(file, line)) {
    if (!line.starts_with(kOpening)) continue;
    const std::string id = line.substr(kOpening.size());
    Vector& vector = vectors[id];
    bool in_message = false;
    std::string hex;
    while (std::getline(file, line) && line != "```") {
      if (in_message) {
        EXPECT_LE(line.size(), 64u) << id << ": " << line;
        hex += line;
      } else if (line == "message:") {
        in_message = true;
      } else {
        const size_t colon = line.find(':');
        EXPECT_NE(colon, std::string::npos) << id << ": " << line;
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        if (value.starts_with(' ')) value.erase(0, 1);
        vector.fields[line.substr(0, colon)] = value;
      }
    }
    EXPECT_TRUE(in_message) << id << " has no message";
    auto bytes = FromHex(hex);
    EXPECT_TRUE(bytes.has_value()) << id << ": the message is not hex";
    if (bytes) vector.message = std::move(*bytes);
  }
  return vectors;
}

}  // namespace kmsd::testing
