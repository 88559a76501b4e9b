#include "protocol/value.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>
#include <msgpack.hpp>
#include <new>

namespace kmsd {
namespace {

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
// Spelled out for compilers without aggregate CTAD (clang < 17).
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

void Pack(msgpack::packer<WipingBuffer>& pk, const Value& value) {
  std::visit(Overloaded{
                 [&](std::monostate) { pk.pack_nil(); },
                 [&](bool b) { b ? pk.pack_true() : pk.pack_false(); },
                 [&](int64_t n) { pk.pack_int64(n); },
                 [&](uint64_t n) { pk.pack_uint64(n); },
                 [&](const std::string& s) {
                   pk.pack_str(static_cast<uint32_t>(s.size()));
                   pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
                 },
                 [&](const Bytes& b) {
                   pk.pack_bin(static_cast<uint32_t>(b.size()));
                   pk.pack_bin_body(reinterpret_cast<const char*>(b.data()),
                                    static_cast<uint32_t>(b.size()));
                 },
                 [&](const SecretBuffer& b) {
                   pk.pack_bin(static_cast<uint32_t>(b.size()));
                   pk.pack_bin_body(reinterpret_cast<const char*>(b.RevealData()),
                                    static_cast<uint32_t>(b.size()));
                 },
                 [&](const Value::Array& a) {
                   pk.pack_array(static_cast<uint32_t>(a.size()));
                   for (const auto& item : a) Pack(pk, item);
                 },
                 [&](const Value::Map& m) {
                   pk.pack_map(static_cast<uint32_t>(m.size()));
                   for (const auto& [key, item] : m) {
                     pk.pack_str(static_cast<uint32_t>(key.size()));
                     pk.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
                     Pack(pk, item);
                   }
                 },
             },
             value.variant());
}

}  // namespace

WipingBuffer::WipingBuffer(WipingBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

WipingBuffer& WipingBuffer::operator=(WipingBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

WipingBuffer::~WipingBuffer() { Release(); }

void WipingBuffer::write(const char* data, size_t size) {
  if (size == 0) return;  // data may be null for an empty binary
  if (size_ + size > capacity_) {
    size_t capacity = capacity_ == 0 ? 256 : capacity_;
    while (capacity < size_ + size) capacity *= 2;
    auto* grown = static_cast<uint8_t*>(std::malloc(capacity));
    if (grown == nullptr) throw std::bad_alloc();
    if (size_ > 0) std::memcpy(grown, data_, size_);
    const size_t used = size_;
    Release();  // wipes the old copy
    data_ = grown;
    size_ = used;
    capacity_ = capacity;
  }
  std::memcpy(data_ + size_, data, size);
  size_ += size;
}

void WipingBuffer::Release() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, capacity_);
  std::free(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
}

WipingBuffer EncodeValue(const Value& value) {
  WipingBuffer out;
  msgpack::packer<WipingBuffer> pk(out);
  Pack(pk, value);
  return out;
}

}  // namespace kmsd
