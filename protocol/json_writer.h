// JsonWriter: JSON text written straight into a string, without a document
// tree, for the hot paths that write one object per request (the audit log's
// entries). Objects and arrays nest; commas and colons are placed for the
// caller. Strings are escaped as RFC 8259 requires (quote, backslash and
// control characters), and bytes that are not well-formed UTF-8 are replaced
// by U+FFFD, so the text is always valid JSON whatever the input.
//
// The caller keeps the calls balanced (a Key before each object member) and
// nests at most kMaxDepth deep; nothing is checked at run time beyond what
// the text needs. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kmsd {

class JsonWriter {
 public:
  static constexpr int kMaxDepth = 64;

  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view name);
  JsonWriter& String(std::string_view text);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

 private:
  void BeforeValue();
  void Open(char bracket);
  void Close(char bracket);

  std::string& out_;
  // Bit d: whether the open object or array at depth d has a member yet
  // (bits, not a vector: this runs once per request).
  uint64_t has_member_ = 0;
  int depth_ = 0;
  bool after_key_ = false;
};

// `text` as a JSON string literal (quotes included), escaped as above.
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace kmsd
