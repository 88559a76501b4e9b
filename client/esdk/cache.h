// A bounded cache of data keys in the spirit of the ESDK's caching
// materials manager (specification: framework/caching-cmm.md): messages
// encrypted under the same partition (a keyring: tenant and key), suite and
// encryption context reuse one data key within limits on its age, the
// messages and the bytes it protects; decrypting reuses a data key recovered
// for the same EDKs and context within the age limit.
//
// Beyond the SDKs: misses for the same entry that happen at the same time
// merge, so a burst of threads makes one kmsd request per entry, not one
// each (aws-encryption-sdk-javascript#1665). A caller that finds the entry
// being made waits for it; if making it fails, every waiter gets that error.
//
// Cached plaintext data keys live in SecretBuffers and are wiped when an
// entry is evicted (capacity, least recently used first), expires or uses up
// a limit. A message whose size is not known up front bypasses the cache on
// encrypt (its bytes could not be counted), as in the SDKs. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "client/esdk/keyring.h"

namespace kmsd::esdk {

struct CacheLimits {
  std::chrono::milliseconds max_age{300'000};
  uint64_t max_messages = uint64_t{1} << 32;  // the SDK's bound per data key
  uint64_t max_bytes = uint64_t{1} << 62;
  size_t capacity = 1000;  // entries, encrypt and decrypt together
};

class DataKeyCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit DataKeyCache(CacheLimits limits, Clock clock = nullptr);
  ~DataKeyCache();

  size_t size() const;
  // Wipes and drops every entry.
  void Clear();

 private:
  friend class CachingMaterials;
  struct Entry {
    std::chrono::steady_clock::time_point made_at;
    uint64_t messages = 0;
    uint64_t bytes = 0;
    std::optional<EncryptionMaterials> encryption;
    std::optional<DecryptionMaterials> decryption;
  };
  struct InFlight {
    bool done = false;
    Status status;
  };
  // Gives `use` the entry for `key`, when `fits` says it can serve one more
  // use, or else a new one from `make` (concurrent makes of one key merge;
  // a new entry that cannot serve even this use is used once, not kept).
  Status WithEntry(const std::string& key, const std::function<Status(Entry&)>& make,
                   const std::function<bool(const Entry&)>& fits,
                   const std::function<Status(Entry&)>& use);
  void DropLocked(const std::string& key);
  void TouchLocked(const std::string& key);

  const CacheLimits limits_;
  const Clock clock_;
  mutable std::mutex mu_;
  std::condition_variable made_;
  std::list<std::string> recency_;                           // most recent first; guarded by mu_
  std::map<std::string, std::unique_ptr<Entry>> entries_;    // guarded by mu_
  std::map<std::string, std::shared_ptr<InFlight>> making_;  // guarded by mu_
};

// A materials manager that asks `underlying` only on a cache miss.
// `partition` names what the underlying manager stands for, credentials
// included: a hit skips the keyring, so kmsd's access checks too. Managers
// sharing a cache share entries only under the same partition; empty (the
// default) means a random one of its own, as in the SDK.
class CachingMaterials final : public MaterialsManager {
 public:
  CachingMaterials(MaterialsManager& underlying, DataKeyCache& cache, std::string partition = {});
  Result<EncryptionMaterials> GetEncryptionMaterials(
      const Suite& suite, const EncryptionContext& context,
      std::optional<uint64_t> plaintext_bytes) override;
  Result<DecryptionMaterials> DecryptMaterials(const Suite& suite, const EncryptionContext& context,
                                               std::span<const EncryptedDataKey> edks) override;

 private:
  MaterialsManager& underlying_;
  DataKeyCache& cache_;
  std::string partition_;
};

}  // namespace kmsd::esdk
