// What kmsctl prints: a reply's result as one JSON object (--json) or as
// human-readable text (key: value lines, tables for lists), and errors.
//
// ToJson() converts any msgpack value: binaries become base64 (standard
// alphabet, padded), unsigned integers JSON numbers, maps and arrays are
// converted recursively, map order is kept. Printed text is assembled in a
// WipingBuffer and written with write(2), and the strings of a printed Json
// are wiped afterwards, because a result may carry a plaintext or data key.
// Human output replaces control characters in strings from kmsd with '?'.
// Output is a cheap value; not synchronized.
#pragma once

#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/message.h"
#include "protocol/status.h"

namespace kmsd::kmsctl {

using Json = nlohmann::ordered_json;

Json ToJson(const msgpack::object& object);
Json ToJson(const Fields& fields);
// Overwrites every string value in `json` (not the keys) before it dies.
void WipeJson(Json& json);
// object[name] when it is a string, else "".
std::string TextField(const Json& object, const char* name);

// Writes all of `bytes` to a file descriptor; INTERNAL on failure.
Status WriteAll(int fd, std::span<const uint8_t> bytes, std::string_view what);

struct Column {
  std::string_view header;
  std::string_view key;
};

class Output {
 public:
  explicit Output(bool json) : json_(json) {}
  bool json() const { return json_; }

  // --json: `object` on one line. Otherwise one "key: value" line per
  // field, nested maps as "parent.child: value", arrays joined with ", ",
  // "*_at" times in UTC (ISO 8601). An empty object prints nothing.
  Status Object(Json object) const;
  // --json: `object`. Otherwise a table of the array object[rows_key], one
  // row per element, with the given columns.
  Status Table(Json object, std::string_view rows_key, std::span<const Column> columns) const;
  // --json: {"error":{"code":...,"message":...,"class":...,"retry_after_ms":...}}
  // on stdout (class and retry_after_ms when known). Otherwise
  // "kmsctl: CODE: message" on stderr, with "(retry after N ms)" when known.
  void Error(std::string_view code, std::string_view message, std::string_view error_class = {},
             std::optional<uint32_t> retry_after_ms = std::nullopt) const;
  void Error(const Status& status) const;

  // Human text to stdout / stderr, as is.
  static Status Stdout(std::string_view text);
  static void Stderr(std::string_view text);
  // `text` with control characters replaced by '?', for the terminal.
  static std::string Printable(std::string_view text);

 private:
  Status PrintJson(Json& object) const;
  bool json_;
};

}  // namespace kmsd::kmsctl
