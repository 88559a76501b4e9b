// FakeSystem: a System (os/system.h) for tests that records what it is asked
// and answers as the test sets it up. Pages come from the real System, so a
// buffer made under the fake may be freed after it is gone. Install it with
// TEST_ScopedSystem. Thread-safe (one mutex); not copyable.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "os/system.h"

namespace kmsd::testing {

struct MemoryRange {
  const void* data = nullptr;
  size_t bytes = 0;
  bool operator==(const MemoryRange&) const = default;
};

class FakeSystem final : public System {
 public:
  struct Calls {
    std::vector<MemoryRange> mapped, unmapped, locked, unlocked, excluded;
    // For each UnlockMemory: whether every byte of the range was already zero.
    std::vector<bool> wiped_before_unlock;
    int harden_calls = 0;
    std::vector<std::string> thread_names;
    std::vector<nng_stream*> peer_queries;
    std::vector<std::string> notices;
    std::vector<std::vector<std::string>> journal;  // each entry's fields
  };

  // How the fake answers; set before use.
  bool map_succeeds = true;
  bool lock_succeeds = true;
  bool exclude_succeeds = true;
  bool wipe_on_fork_succeeds = true;
  bool harden_succeeds = true;
  std::optional<PeerCredentials> peer;
  std::chrono::microseconds watchdog_interval{0};
  std::optional<uint64_t> lockable_bytes;  // unlimited
  bool journal_succeeds = true;

  Calls calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

  size_t PageSize() const override { return real_.PageSize(); }
  void* MapPages(size_t bytes) override {
    void* pages = map_succeeds ? real_.MapPages(bytes) : nullptr;
    Record(calls_.mapped, pages, bytes);
    return pages;
  }
  void UnmapPages(void* pages, size_t bytes) override {
    Record(calls_.unmapped, pages, bytes);
    real_.UnmapPages(pages, bytes);
  }
  bool LockMemory(void* data, size_t bytes) override {
    Record(calls_.locked, data, bytes);
    return lock_succeeds;
  }
  void UnlockMemory(void* data, size_t bytes) override {
    bool zero = true;
    for (size_t i = 0; i < bytes; ++i) zero = zero && static_cast<const uint8_t*>(data)[i] == 0;
    std::lock_guard lock(mu_);
    calls_.unlocked.push_back({data, bytes});
    calls_.wiped_before_unlock.push_back(zero);
  }
  bool ExcludeFromCoreDumps(void* data, size_t bytes) override {
    Record(calls_.excluded, data, bytes);
    return exclude_succeeds;
  }
  bool WipeOnFork(void* pages, size_t bytes) override {
    return wipe_on_fork_succeeds && real_.WipeOnFork(pages, bytes);
  }
  std::optional<uint64_t> LockableBytes() override { return lockable_bytes; }
  bool HardenProcess() override {
    std::lock_guard lock(mu_);
    ++calls_.harden_calls;
    return harden_succeeds;
  }
  void NameThisThread(std::string_view name) override {
    std::lock_guard lock(mu_);
    calls_.thread_names.emplace_back(name);
  }
  std::optional<PeerCredentials> PeerOfStream(nng_stream* stream) override {
    std::lock_guard lock(mu_);
    calls_.peer_queries.push_back(stream);
    return peer;
  }
  void Notify(std::string_view state) override {
    std::lock_guard lock(mu_);
    calls_.notices.emplace_back(state);
  }
  std::chrono::microseconds WatchdogInterval() override {
    std::lock_guard lock(mu_);
    return watchdog_interval;
  }
  bool Journal(const std::vector<std::string>& fields) override {
    std::lock_guard lock(mu_);
    calls_.journal.push_back(fields);
    return journal_succeeds;
  }

 private:
  void Record(std::vector<MemoryRange>& into, const void* data, size_t bytes) {
    std::lock_guard lock(mu_);
    into.push_back({data, bytes});
  }

  System& real_ = PlatformSystem();
  mutable std::mutex mu_;
  Calls calls_;  // guarded by mu_
};

}  // namespace kmsd::testing
