// Test helpers: Value maps and arrays in one expression (Value is move-only,
// so brace initializer lists, which copy, do not work), and decoding that
// fails the test by exception.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "protocol/message.h"
#include "protocol/value.h"

namespace kmsd::testing {

// GCC 12 at -O2 warns that moving a freshly made Value's variant reads it
// uninitialized (a false positive when an integer follows nested maps).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
inline void AddEntries(Value::Map&) {}
template <typename V, typename... Rest>
void AddEntries(Value::Map& map, std::string key, V&& value, Rest&&... rest) {
  map.emplace_back(std::move(key), Value(std::forward<V>(value)));
  AddEntries(map, std::forward<Rest>(rest)...);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// MapOf("key", value, "key2", value2, ...), in wire order; keys may repeat.
template <typename... Args>
Value::Map MapOf(Args&&... args) {
  Value::Map map;
  AddEntries(map, std::forward<Args>(args)...);
  return map;
}

template <typename... Args>
Value::Array ArrayOf(Args&&... args) {
  Value::Array array;
  (array.emplace_back(std::forward<Args>(args)), ...);
  return array;
}

// The msgpack encoding of `value`, as plain bytes.
inline std::vector<uint8_t> EncodedBytes(const Value& value) {
  WipingBuffer buffer = EncodeValue(value);
  return {buffer.data(), buffer.data() + buffer.size()};
}

// Decodes or throws (gtest reports the exception as a failure).
inline Frame MustDecode(std::span<const uint8_t> bytes) {
  auto frame = Frame::Decode(bytes);
  if (!frame) throw std::runtime_error("Frame::Decode failed: " + frame.error().ToString());
  return std::move(*frame);
}

}  // namespace kmsd::testing
