// Big-endian fields written to and read from byte strings: the ESDK message
// format is made of them. ByteReader never reads past its span; a read past
// the end sets `short_` and returns zeros, so a parser checks once per field
// group rather than after every byte. Not thread-safe.
#pragma once

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace kmsd::esdk {

using Bytes = std::vector<uint8_t>;

inline void PutU8(Bytes& out, uint8_t value) { out.push_back(value); }
inline void PutU16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
inline void PutU32(Bytes& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}
inline void PutU64(Bytes& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}
inline void PutBytes(Bytes& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
inline void PutBytes(Bytes& out, std::string_view bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
// Writes `value` big-endian into 4 bytes at `at`.
inline void StoreU32(uint8_t* at, uint32_t value) {
  at[0] = static_cast<uint8_t>(value >> 24);
  at[1] = static_cast<uint8_t>(value >> 16);
  at[2] = static_cast<uint8_t>(value >> 8);
  at[3] = static_cast<uint8_t>(value);
}
inline uint32_t LoadU32(const uint8_t* at) {
  return uint32_t{at[0]} << 24 | uint32_t{at[1]} << 16 | uint32_t{at[2]} << 8 | at[3];
}

// Working memory for frames: its bytes are not zeroed when it is made or
// grows (each frame overwrites what it uses), and Wipe() clears all of it.
class ScratchBuffer {
 public:
  // At least `size` bytes; earlier contents are lost when it grows.
  uint8_t* Reserve(size_t size) {
    if (size > capacity_) {
      Wipe();
      data_ = std::make_unique_for_overwrite<uint8_t[]>(size);
      capacity_ = size;
    }
    return data_.get();
  }
  // At least `size` bytes (growing geometrically up to `limit`), keeping the
  // first `keep` bytes.
  uint8_t* Grow(size_t size, size_t keep, size_t limit) {
    if (size > capacity_) {
      const size_t capacity = std::max(size, std::min(limit, capacity_ * 2));
      auto grown = std::make_unique_for_overwrite<uint8_t[]>(capacity);
      if (keep > 0) std::copy(data_.get(), data_.get() + keep, grown.get());
      Wipe();
      data_ = std::move(grown);
      capacity_ = capacity;
    }
    return data_.get();
  }
  uint8_t* data() const { return data_.get(); }
  void Wipe() {
    if (data_) OPENSSL_cleanse(data_.get(), capacity_);
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }
  // True once a read went past the end.
  bool is_short() const { return short_; }

  uint8_t U8() { return static_cast<uint8_t>(Number(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Number(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Number(4)); }
  uint64_t U64() { return Number(8); }
  // The next `size` bytes, or an empty span when fewer remain.
  std::span<const uint8_t> Take(size_t size) {
    if (short_ || size > remaining()) {
      short_ = true;
      return {};
    }
    const auto out = bytes_.subspan(offset_, size);
    offset_ += size;
    return out;
  }

 private:
  uint64_t Number(size_t size) {
    uint64_t value = 0;
    for (uint8_t byte : Take(size)) value = value << 8 | byte;
    return value;
  }

  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  bool short_ = false;
};

}  // namespace kmsd::esdk
