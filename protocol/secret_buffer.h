// SecretBuffer: the one type that holds secret bytes (keys, data keys,
// plaintexts, PINs) in kmsd and its clients.
//
// Memory comes from OpenSSL's secure heap when it has room (locked in RAM,
// excluded from core dumps, guard pages), else from its own pages, which it
// asks the System (os/system.h) to lock and keep out of core dumps. It is wiped with
// OPENSSL_cleanse when freed or shrunk. There is no stream or format operator: the bytes leave only
// through RevealData()/RevealMutableData(), so `grep Reveal` finds every place
// a secret is read raw. Move-only; not synchronized (one owner at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kmsd {

class SecretBuffer {
 public:
  SecretBuffer() = default;
  // A zero-filled buffer of `size` bytes.
  explicit SecretBuffer(size_t size);
  static SecretBuffer CopyOf(std::span<const uint8_t> bytes);
  static SecretBuffer CopyOf(std::string_view bytes);

  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Wipes the tail; never grows.
  void Shrink(size_t new_size);

  const uint8_t* RevealData() const { return data_; }
  uint8_t* RevealMutableData() { return data_; }
  std::span<const uint8_t> RevealSpan() const { return {data_, size_}; }

  // Constant-time comparison (CRYPTO_memcmp); sizes are not secret.
  bool EqualsInConstantTime(std::span<const uint8_t> other) const;

 private:
  void Release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  bool from_secure_heap_ = false;
};

// Sets up OpenSSL's secure heap (power-of-two `bytes`). Returns false when the
// heap could not be locked in memory (e.g. RLIMIT_MEMLOCK) or not made at
// all: in the first case it is still used (kept out of core dumps, not
// locked), in the second SecretBuffer uses its own pages for everything.
bool InitSecureHeap(size_t bytes);

// Wipes ordinary memory that held secret bytes (a request frame, a reply).
void WipeMemory(void* data, size_t size);

}  // namespace kmsd
