// TenantStore: one tenant's encrypted files under ROOT/<tenant>/ (the
// seeds' isolated storage paths), each an Encryption SDK message
// (client/esdk/) whose encryption context names the tenant and the file's
// name (kContextTenant, kContextName): a file moved to another name, or into
// another tenant's tree, does not decrypt (INVALID_CIPHERTEXT), and kmsd binds
// its data key to the same context.
//
// Names: client/store/beneath.h (no escape, no symbolic links on the path).
//
// Writes are atomic: the message goes to a temporary file in the target's
// directory (.kmsd-tmp-*), which is fsynced, renamed over the name, and the
// directory fsynced; a crash leaves the old file or the new one, never a
// torn one. A temporary file left by a writer that died is removed by the
// next writer.
//
// Quotas (the tenant policy's storage.max_file_size, max_file_count,
// max_data_size, as tenant.describe serves them) count plaintext bytes and
// are checked before anything is written, under an exclusive lock on the
// tenant's .kmsd-lock: each writer measures the tree, counts the writes in
// flight (their temporary files, named with what they reserved and locked by
// their writers while they live), and reserves its own before it lets go of
// the lock; so writers racing at a limit cannot pass it together, whether
// threads or processes. A write of unknown size (a pipe) reserves what the
// quotas leave and fails with QUOTA_EXCEEDED if it goes past that, leaving
// nothing. Over a limit: QUOTA_EXCEEDED, and the store is as it was.
//
// Methods may be called from several threads; the MaterialsManager given to
// Put and Get must allow that if they are.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/esdk/message.h"
#include "client/store/beneath.h"

namespace kmsd::store {

inline constexpr std::string_view kContextTenant = "kmsd-store-tenant";
inline constexpr std::string_view kContextName = "kmsd-store-name";

struct Quota {
  std::optional<uint64_t> max_file_size;  // plaintext bytes of one file
  std::optional<uint64_t> max_file_count;
  std::optional<uint64_t> max_data_size;  // plaintext bytes of all files
};

struct Usage {
  uint64_t files = 0;
  uint64_t bytes = 0;  // plaintext
};

struct StoredFile {
  std::string name;
  // Plaintext bytes, from the message's header and size; nullopt when the
  // file is not a message the store could have written (then the quotas
  // count its size on disk).
  std::optional<uint64_t> bytes;
  uint64_t stored_bytes = 0;
  int64_t modified_ns = 0;  // since the epoch
};

struct PutResult {
  uint64_t bytes = 0;         // plaintext
  uint64_t stored_bytes = 0;  // the message
  bool replaced = false;      // a file of that name was there before
};

// Fills `buffer` with up to its size; 0 at the end.
using Reader = std::function<Result<size_t>(std::span<uint8_t>)>;

class TenantStore {
 public:
  // ROOT/<tenant> (made, mode 0700, when `create`; else NOT_FOUND when
  // missing). The root must exist. `tenant` must be a valid tenant name.
  static Result<TenantStore> Open(const std::string& root, const std::string& tenant, bool create,
                                  Resolver resolver = Resolver::kAuto);

  // Encrypts what `read` gives (`size` bytes when known) into `name`.
  Result<PutResult> Put(esdk::MaterialsManager& materials, std::string_view name,
                        const Reader& read, std::optional<uint64_t> size, const Quota& quota,
                        uint32_t frame_length = esdk::kDefaultFrameLength) const;
  // Decrypts `name` into `sink`, each frame once it authenticates; the
  // plaintext bytes on success. A file that fails part-way has given the
  // sink what came before (write it somewhere it can be discarded).
  Result<uint64_t> Get(esdk::MaterialsManager& materials, std::string_view name,
                       const esdk::Sink& sink) const;
  // Every file, by name.
  Result<std::vector<StoredFile>> List() const;
  // NOT_FOUND when there is no such file.
  Status Delete(std::string_view name) const;
  // The files and plaintext bytes stored (writes in flight not counted).
  Result<Usage> Measure() const;

  const std::string& tenant() const { return tenant_; }
  const Beneath& directory() const { return directory_; }
  // The encryption context of the file `name`.
  EncryptionContext ContextOf(std::string_view name) const;

 private:
  TenantStore(Beneath directory, std::string tenant)
      : directory_(std::move(directory)), tenant_(std::move(tenant)) {}

  Beneath directory_;
  std::string tenant_;
};

// Reads the header of the message open at `fd` (its first bytes, at most
// the header limit): the header and its size, or nullopt when it is not one.
std::optional<esdk::ParsedHeader> ReadHeader(int fd);

}  // namespace kmsd::store
