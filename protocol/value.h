// Value: a msgpack value built in memory, for requests (client side) and
// replies (daemon side), and WipingBuffer, the byte sink they encode into.
//
// A Value may own a SecretBuffer (a plaintext or data key in a reply), so it is
// move-only. EncodeValue() writes msgpack into a WipingBuffer, which wipes its
// bytes when it grows or dies. Not synchronized.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/secret_buffer.h"

namespace kmsd {

using Bytes = std::vector<uint8_t>;

class Value {
 public:
  using Array = std::vector<Value>;
  using Map = std::vector<std::pair<std::string, Value>>;

  Value() : v_(std::monostate{}) {}
  Value(std::nullptr_t) : v_(std::monostate{}) {}
  Value(bool b) : v_(b) {}
  template <std::integral T>
  requires(!std::same_as<T, bool>) Value(T n) {
    if constexpr (std::is_signed_v<T>) {
      if (n < 0) {
        v_ = static_cast<int64_t>(n);
        return;
      }
    }
    v_ = static_cast<uint64_t>(n);
  }
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Bytes b) : v_(std::move(b)) {}
  Value(SecretBuffer b) : v_(std::move(b)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Map m) : v_(std::move(m)) {}

  using Variant = std::variant<std::monostate, bool, int64_t, uint64_t, std::string, Bytes,
                               SecretBuffer, Array, Map>;
  const Variant& variant() const { return v_; }

 private:
  Variant v_;
};

class WipingBuffer {
 public:
  WipingBuffer() = default;
  WipingBuffer(WipingBuffer&& other) noexcept;
  WipingBuffer& operator=(WipingBuffer&& other) noexcept;
  WipingBuffer(const WipingBuffer&) = delete;
  WipingBuffer& operator=(const WipingBuffer&) = delete;
  ~WipingBuffer();

  // msgpack::packer's stream interface.
  void write(const char* data, size_t size);
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> span() const { return {data_, size_}; }

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

WipingBuffer EncodeValue(const Value& value);

}  // namespace kmsd
