#include "protocol/secret_buffer.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <utility>

namespace kmsd {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundUpToPages(size_t n) {
  const size_t page = PageSize();
  return (n + page - 1) / page * page;
}

// Own locked pages for what the secure heap cannot hold. mlock may fail for an
// unprivileged process over RLIMIT_MEMLOCK; the pages are still kept out of
// core dumps, and the daemon is non-dumpable as well.
uint8_t* MapLockedPages(size_t capacity) {
  void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)madvise(p, capacity, MADV_DONTDUMP);
  (void)mlock(p, capacity);
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
    munlock(data_, capacity_);
    munmap(data_, capacity_);
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
