// Admission: what the admit stage hands a request it lets in (a place among
// its tenant's requests in flight, daemon/tenant_rules.h), held until it is
// executed (the server frees it before sending the reply). Move-only; not
// synchronized.
#pragma once

#include <functional>
#include <utility>

namespace kmsd {

// A request's place among its tenant's requests in flight; move-only, frees
// the place when destroyed. Empty for requests no policy limits.
class Admission {
 public:
  Admission() = default;
  explicit Admission(std::function<void()> release) : release_(std::move(release)) {}
  Admission(Admission&& other) noexcept : release_(std::exchange(other.release_, nullptr)) {}
  Admission& operator=(Admission&& other) noexcept {
    if (this != &other) {
      Release();
      release_ = std::exchange(other.release_, nullptr);
    }
    return *this;
  }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { Release(); }

 private:
  void Release() {
    if (release_) std::exchange(release_, nullptr)();
  }
  std::function<void()> release_;
};

}  // namespace kmsd
