// The test vectors of docs/FORMATS.md ("AWS Encryption SDK messages", Test
// vectors): blocks opened by "```hex id=vector-X" holding "name: value"
// lines (the value may be empty), then "message:", then lines of at most 64
// hex digits, then "```". Read by the unit test (our decryptor) and the
// interop test (the JavaScript SDK).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "client/esdk/bytes.h"

namespace kmsd::testing {

struct Vector {
  std::map<std::string, std::string> fields;  // the "name: value" lines
  esdk::Bytes message;
};

// nullopt unless lowercase hex of whole bytes.
std::optional<esdk::Bytes> FromHex(std::string_view hex);

// The vectors of the document at `path`, by X (gtest failures for a
// malformed block).
std::map<std::string, Vector> ReadVectors(const std::string& path);

inline std::string FormatsPath() { return KMSD_SOURCE_DIR "/docs/FORMATS.md"; }

}  // namespace kmsd::testing
