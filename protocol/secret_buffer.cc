#include "protocol/secret_buffer.h"

#include <openssl/crypto.h>

#include <cstring>
#include <new>
#include <utility>

#include "os/system.h"

namespace kmsd {
namespace {

size_t RoundUpToPages(size_t n) {
  const size_t page = CurrentSystem().PageSize();
  return (n + page - 1) / page * page;
}

// Own locked pages for what the secure heap cannot hold. mlock may fail for an
// unprivileged process over RLIMIT_MEMLOCK; the pages are still kept out of
// core dumps, and the daemon is non-dumpable as well.
uint8_t* MapLockedPages(size_t capacity) {
  System& system = CurrentSystem();
  void* p = system.MapPages(capacity);
  if (p == nullptr) throw std::bad_alloc();
  (void)system.ExcludeFromCoreDumps(p, capacity);
  (void)system.LockMemory(p, capacity);
  return static_cast<uint8_t*>(p);
}

}  // namespace

SecretBuffer::SecretBuffer(size_t size) : size_(size), capacity_(size) {
  if (size == 0) return;
  if (CRYPTO_secure_malloc_initialized()) {
    data_ = static_cast<uint8_t*>(OPENSSL_secure_zalloc(size));
    if (data_ != nullptr) {
      from_secure_heap_ = true;
      return;
    }
  }
  capacity_ = RoundUpToPages(size);
  data_ = MapLockedPages(capacity_);  // anonymous pages are zero-filled
}

SecretBuffer SecretBuffer::CopyOf(std::span<const uint8_t> bytes) {
  SecretBuffer buffer(bytes.size());
  if (!bytes.empty()) std::memcpy(buffer.data_, bytes.data(), bytes.size());
  return buffer;
}

SecretBuffer SecretBuffer::CopyOf(std::string_view bytes) {
  return CopyOf(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      from_secure_heap_(std::exchange(other.from_secure_heap_, false)) {}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    from_secure_heap_ = std::exchange(other.from_secure_heap_, false);
  }
  return *this;
}

SecretBuffer::~SecretBuffer() { Release(); }

void SecretBuffer::Shrink(size_t new_size) {
  if (new_size >= size_) return;
  OPENSSL_cleanse(data_ + new_size, size_ - new_size);
  size_ = new_size;
}

bool SecretBuffer::EqualsInConstantTime(std::span<const uint8_t> other) const {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data(), size_) == 0;
}

void SecretBuffer::Release() {
  if (data_ == nullptr) return;
  if (from_secure_heap_) {
    OPENSSL_secure_clear_free(data_, capacity_);
  } else {
    OPENSSL_cleanse(data_, capacity_);
    System& system = CurrentSystem();
    system.UnlockMemory(data_, capacity_);
    system.UnmapPages(data_, capacity_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
}

bool InitSecureHeap(size_t bytes) {
  if (CRYPTO_secure_malloc_initialized()) return true;
  return CRYPTO_secure_malloc_init(bytes, 32) == 1;
}

void WipeMemory(void* data, size_t size) {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

}  // namespace kmsd
