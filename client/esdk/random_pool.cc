#include "client/esdk/random_pool.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "os/system.h"

namespace kmsd::esdk {
namespace {

Status RandBytes(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return Status(Code::kInternal, "OpenSSL: no random bytes");
  }
  return OkStatus();
}

// One page: a count of the unused bytes at its end, then the bytes. A forked
// child finds the count zero.
class RandomPool {
 public:
  RandomPool() {
    System& system = CurrentSystem();
    page_bytes_ = system.PageSize();
    void* page = system.MapPages(page_bytes_);
    if (page != nullptr && !system.WipeOnFork(page, page_bytes_)) {
      system.UnmapPages(page, page_bytes_);
      page = nullptr;
    }
    page_ = static_cast<uint8_t*>(page);
  }
  ~RandomPool() {
    if (page_ != nullptr) CurrentSystem().UnmapPages(page_, page_bytes_);
  }
  RandomPool(const RandomPool&) = delete;
  RandomPool& operator=(const RandomPool&) = delete;

  Status Fill(std::span<uint8_t> out) {
    const size_t capacity = page_bytes_ - sizeof(size_t);
    if (page_ == nullptr || out.size() > capacity / 4) return RandBytes(out);
    size_t remaining;
    std::memcpy(&remaining, page_, sizeof remaining);
    uint8_t* const bytes = page_ + sizeof(size_t);
    if (remaining < out.size()) {
      RETURN_IF_ERROR(RandBytes({bytes, capacity}));
      remaining = capacity;
    }
    remaining -= out.size();
    std::copy_n(bytes + remaining, out.size(), out.data());
    std::memset(bytes + remaining, 0, out.size());  // handed out once
    std::memcpy(page_, &remaining, sizeof remaining);
    return OkStatus();
  }

 private:
  size_t page_bytes_ = 0;
  uint8_t* page_ = nullptr;
};

}  // namespace

Status FillUniqueRandom(std::span<uint8_t> out) {
  thread_local RandomPool pool;
  return pool.Fill(out);
}

}  // namespace kmsd::esdk
