#include "client/esdk/cache.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "protocol/base64.h"

namespace kmsd::esdk {
namespace {

Result<EncryptionMaterials> CopyOf(const EncryptionMaterials& materials) {
  EncryptionMaterials copy{.suite = materials.suite,
                           .context = materials.context,
                           .data_key = SecretBuffer::CopyOf(materials.data_key.RevealSpan()),
                           .edks = materials.edks,
                           .signer = std::nullopt};
  if (materials.signer) {
    ASSIGN_OR_RETURN(Signer signer, materials.signer->Fork());
    copy.signer = std::move(signer);
  }
  return copy;
}

DecryptionMaterials CopyOf(const DecryptionMaterials& materials) {
  return {.suite = materials.suite,
          .context = materials.context,
          .data_key = SecretBuffer::CopyOf(materials.data_key.RevealSpan())};
}

void PutField(Bytes& out, std::span<const uint8_t> bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  PutBytes(out, bytes);
}

void PutField(Bytes& out, std::string_view text) {
  PutField(out, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

// The entry's name: a digest of everything that must match for a data key
// to be reused (the cache holds no context or EDK in its keys).
Result<std::string> EntryKey(char kind, std::string_view partition, const Suite& suite,
                             const EncryptionContext& context,
                             std::span<const EncryptedDataKey> edks) {
  Bytes material;
  PutU8(material, static_cast<uint8_t>(kind));
  PutField(material, partition);
  PutU16(material, suite.id);
  ASSIGN_OR_RETURN(const Bytes serialized, SerializeContext(context));
  PutField(material, serialized);
  std::vector<Bytes> keys;
  for (const EncryptedDataKey& edk : edks) {
    Bytes one;
    PutField(one, edk.provider_id);
    PutField(one, edk.provider_info);
    PutField(one, edk.ciphertext);
    keys.push_back(std::move(one));
  }
  std::sort(keys.begin(), keys.end());  // the same EDKs in any order
  for (const Bytes& one : keys) PutBytes(material, one);
  std::string digest(SHA512_DIGEST_LENGTH, '\0');
  SHA512(material.data(), material.size(), reinterpret_cast<uint8_t*>(digest.data()));
  return digest;
}

}  // namespace

DataKeyCache::DataKeyCache(CacheLimits limits, Clock clock)
    : limits_(limits),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

DataKeyCache::~DataKeyCache() = default;

size_t DataKeyCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void DataKeyCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.clear();  // SecretBuffers wipe themselves
  recency_.clear();
}

void DataKeyCache::DropLocked(const std::string& key) {
  entries_.erase(key);
  recency_.remove(key);
}

void DataKeyCache::TouchLocked(const std::string& key) {
  recency_.remove(key);
  recency_.push_front(key);
  while (entries_.size() > limits_.capacity && !recency_.empty()) {
    entries_.erase(recency_.back());
    recency_.pop_back();
  }
}

Status DataKeyCache::WithEntry(const std::string& key, const std::function<Status(Entry&)>& make,
                               const std::function<bool(const Entry&)>& fits,
                               const std::function<Status(Entry&)>& use) {
  std::unique_lock lock(mu_);
  while (true) {
    if (auto found = entries_.find(key); found != entries_.end()) {
      Entry& entry = *found->second;
      if (clock_() - entry.made_at < limits_.max_age && fits(entry)) {
        TouchLocked(key);
        return use(entry);
      }
      DropLocked(key);  // expired or used up
    }
    if (auto pending = making_.find(key); pending != making_.end()) {
      const std::shared_ptr<InFlight> in_flight = pending->second;
      made_.wait(lock, [&] { return in_flight->done; });
      if (!in_flight->status.ok()) return in_flight->status;
      continue;  // the new entry is there, or already used up by others
    }
    const auto in_flight = std::make_shared<InFlight>();
    making_[key] = in_flight;
    // Whatever happens to the maker (an exception included), its waiters
    // are released.
    struct Finished {
      DataKeyCache& cache;
      std::unique_lock<std::mutex>& lock;
      const std::string& key;
      InFlight& in_flight;
      ~Finished() {
        if (!lock.owns_lock()) lock.lock();
        cache.making_.erase(key);
        in_flight.done = true;
        cache.made_.notify_all();
      }
    };
    auto fresh = std::make_unique<Entry>();
    Status made;
    {
      in_flight->status = Status(Code::kInternal, "making a data key failed");
      Finished finished{*this, lock, key, *in_flight};
      lock.unlock();
      made = make(*fresh);
      fresh->made_at = clock_();
      lock.lock();
      in_flight->status = made;
    }
    if (!made.ok()) return made;
    // An entry that cannot serve even this message serves it and goes.
    if (!fits(*fresh) || limits_.capacity == 0) return use(*fresh);
    Entry* entry = fresh.get();
    entries_[key] = std::move(fresh);
    TouchLocked(key);  // the newest entry is the last to be evicted
    return use(*entry);
  }
}

CachingMaterials::CachingMaterials(MaterialsManager& underlying, DataKeyCache& cache,
                                   std::string partition)
    : underlying_(underlying), cache_(cache), partition_(std::move(partition)) {
  if (partition_.empty()) {
    uint8_t random[16];
    RAND_bytes(random, sizeof random);
    partition_ = "random:" + Base64Encode(random);
  }
}

Result<EncryptionMaterials> CachingMaterials::GetEncryptionMaterials(
    const Suite& suite, const EncryptionContext& context, std::optional<uint64_t> plaintext_bytes) {
  // Unknown sizes cannot be counted; identity-KDF suites are never cached
  // (the specification's caching CMM; kmsd does not encrypt with them anyway).
  if (!plaintext_bytes || suite.kdf == Kdf::kIdentity) {
    return underlying_.GetEncryptionMaterials(suite, context, plaintext_bytes);
  }
  ASSIGN_OR_RETURN(const std::string key, EntryKey('E', partition_, suite, context, {}));
  const CacheLimits& limits = cache_.limits_;
  std::optional<Result<EncryptionMaterials>> out;
  const Status status = cache_.WithEntry(
      key,
      [&](DataKeyCache::Entry& entry) -> Status {
        ASSIGN_OR_RETURN(EncryptionMaterials made,
                         underlying_.GetEncryptionMaterials(suite, context, plaintext_bytes));
        entry.encryption = std::move(made);
        return OkStatus();
      },
      [&](const DataKeyCache::Entry& entry) {
        return entry.messages < limits.max_messages && entry.bytes <= limits.max_bytes &&
               *plaintext_bytes <= limits.max_bytes - entry.bytes;
      },
      [&](DataKeyCache::Entry& entry) {
        ++entry.messages;
        entry.bytes += *plaintext_bytes;
        out = CopyOf(*entry.encryption);
        return StatusOf(*out);
      });
  RETURN_IF_ERROR(status);
  return std::move(*out);
}

Result<DecryptionMaterials> CachingMaterials::DecryptMaterials(
    const Suite& suite, const EncryptionContext& context, std::span<const EncryptedDataKey> edks) {
  if (suite.kdf == Kdf::kIdentity) return underlying_.DecryptMaterials(suite, context, edks);
  ASSIGN_OR_RETURN(const std::string key, EntryKey('D', partition_, suite, context, edks));
  std::optional<DecryptionMaterials> out;
  const Status status = cache_.WithEntry(
      key,
      [&](DataKeyCache::Entry& entry) -> Status {
        ASSIGN_OR_RETURN(DecryptionMaterials made,
                         underlying_.DecryptMaterials(suite, context, edks));
        entry.decryption = std::move(made);
        return OkStatus();
      },
      [](const DataKeyCache::Entry&) { return true; },
      [&](DataKeyCache::Entry& entry) {
        ++entry.messages;
        out = CopyOf(*entry.decryption);
        return OkStatus();
      });
  RETURN_IF_ERROR(status);
  return std::move(*out);
}

}  // namespace kmsd::esdk
