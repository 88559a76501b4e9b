#include "client/store/tenant_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "client/store/atomic_file.h"
#include "client/store/tree.h"
#include "protocol/names.h"

namespace kmsd::store {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

Status OverQuota(const std::string& what) { return Status(Code::kQuotaExceeded, what); }

// The message's bytes, gathered into large writes (a frame is 4 KiB).
class BufferedFile {
 public:
  explicit BufferedFile(int fd) : fd_(fd) { buffer_.reserve(kChunkBytes); }
  Status Write(std::span<const uint8_t> bytes) {
    written_ += bytes.size();
    if (buffer_.size() + bytes.size() > kChunkBytes) RETURN_IF_ERROR(Flush());
    if (bytes.size() >= kChunkBytes) return WriteAll(fd_, bytes);
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    return OkStatus();
  }
  Status Flush() {
    Status status = WriteAll(fd_, buffer_);
    buffer_.clear();
    return status;
  }
  uint64_t written() const { return written_; }

 private:
  int fd_;
  std::vector<uint8_t> buffer_;
  uint64_t written_ = 0;
};

// How much a write may store: what it declared, else what the quotas
// leave (nullopt: no limit).
Result<std::optional<uint64_t>> Reserve(std::string_view name, std::optional<uint64_t> size,
                                        const Quota& quota, const Usage& usage,
                                        std::optional<uint64_t> replaced_bytes) {
  const std::string shown = "'" + std::string(name) + "'";
  if (quota.max_file_count && !replaced_bytes && usage.files + 1 > *quota.max_file_count) {
    return Error(OverQuota("storing " + shown + " would make " + std::to_string(usage.files + 1) +
                           " files; the tenant's max_file_count is " +
                           std::to_string(*quota.max_file_count)));
  }
  std::optional<uint64_t> allowed = size ? size : quota.max_file_size;
  if (quota.max_data_size) {
    const uint64_t others = usage.bytes - std::min(usage.bytes, replaced_bytes.value_or(0));
    const uint64_t left = *quota.max_data_size - std::min(*quota.max_data_size, others);
    if (size && *size > left) {
      return Error(OverQuota("storing " + shown + " (" + std::to_string(*size) +
                             " bytes) would make " + std::to_string(others + *size) +
                             " bytes; the tenant's max_data_size is " +
                             std::to_string(*quota.max_data_size)));
    }
    allowed = std::min(allowed.value_or(left), left);
  }
  return allowed;
}

// Streams `read` through `encryptor`, at most `allowed` bytes.
Result<uint64_t> Pump(const Reader& read, esdk::Encryptor& encryptor,
                      std::optional<uint64_t> allowed, std::string_view name) {
  std::vector<uint8_t> chunk(kChunkBytes);
  uint64_t total = 0;
  Status status;
  while (status.ok()) {
    auto n = read(chunk);
    if (!n.has_value()) {
      status = n.error();
    } else if (*n == 0) {
      break;
    } else if (allowed && total + *n > *allowed) {
      status = OverQuota("'" + std::string(name) + "' is over the " + std::to_string(*allowed) +
                         " bytes the tenant's quotas leave for it");
    } else {
      total += *n;
      status = encryptor.Write({chunk.data(), *n});
    }
  }
  OPENSSL_cleanse(chunk.data(), chunk.size());
  if (!status.ok()) return Error(std::move(status));
  return total;
}

// A write may replace a regular file, not a link (rename would not follow
// it, but the name would then not be what the tree showed) or a directory.
Status CheckReplaceable(const Beneath& directory, const std::string& entry, std::string_view name) {
  struct stat info {};
  if (::fstatat(directory.fd(), entry.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ErrnoStatus(Code::kInternal, "cannot stat '" + std::string(name) + "'", errno);
  }
  if (S_ISREG(info.st_mode)) return OkStatus();
  if (S_ISLNK(info.st_mode)) {
    return Status(Code::kInvalidArgument,
                  "the name '" + std::string(name) + "' has a symbolic link on its path: refused");
  }
  if (S_ISDIR(info.st_mode)) {
    return Status(Code::kInvalidArgument, "the name '" + std::string(name) + "' is a directory");
  }
  return Status(Code::kInvalidArgument, "'" + std::string(name) + "' is not a regular file");
}

// An open regular file of the store: a FIFO or device is refused, not read.
Result<Fd> OpenRegular(const Beneath& directory, std::string_view name) {
  ASSIGN_OR_RETURN(Fd fd, directory.OpenFile(name, O_RDONLY | O_NONBLOCK));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot stat a stored file", errno));
  }
  if (!S_ISREG(info.st_mode)) {
    return Error(Code::kInvalidArgument, "'" + std::string(name) + "' is not a regular file");
  }
  return fd;
}

}  // namespace

std::optional<esdk::ParsedHeader> ReadHeader(int fd) {
  const esdk::HeaderLimits limits;
  std::vector<uint8_t> bytes;
  size_t want = 4096;
  while (bytes.size() < limits.max_header_bytes) {
    const size_t have = bytes.size();
    bytes.resize(std::min(want, limits.max_header_bytes));
    const ssize_t n = ::pread(fd, bytes.data() + have, bytes.size() - have, have);
    if (n <= 0) return std::nullopt;
    bytes.resize(have + static_cast<size_t>(n));
    auto parsed = esdk::ParseHeader(bytes, limits);
    if (!parsed.has_value()) return std::nullopt;
    if (*parsed) return std::move(**parsed);
    want = bytes.size() * 4;
  }
  return std::nullopt;
}

Result<TenantStore> TenantStore::Open(const std::string& root, const std::string& tenant,
                                      bool create, Resolver resolver) {
  RETURN_IF_ERROR(ValidateTenantName(tenant));
  ASSIGN_OR_RETURN(Beneath top, Beneath::Open(root, resolver));
  auto directory = top.Child(tenant, create);
  if (!directory.has_value() && directory.error().code() == Code::kNotFound) {
    return Error(Code::kNotFound, "the store has no files of tenant '" + tenant + "'");
  }
  if (!directory.has_value()) return Error(directory.error());
  return TenantStore(std::move(*directory), tenant);
}

EncryptionContext TenantStore::ContextOf(std::string_view name) const {
  return {{std::string(kContextTenant), tenant_}, {std::string(kContextName), std::string(name)}};
}

Result<PutResult> TenantStore::Put(esdk::MaterialsManager& materials, std::string_view name,
                                   const Reader& read, std::optional<uint64_t> size,
                                   const Quota& quota, uint32_t frame_length) const {
  RETURN_IF_ERROR(CheckName(name));
  if (size && quota.max_file_size && *size > *quota.max_file_size) {
    return Error(OverQuota("'" + std::string(name) + "' is " + std::to_string(*size) +
                           " bytes; the tenant's max_file_size is " +
                           std::to_string(*quota.max_file_size)));
  }
  // Measure and reserve under the tenant's lock; write after it.
  ASSIGN_OR_RETURN(Fd lock, LockTenant(directory_));
  ASSIGN_OR_RETURN(const Tally tally, TallyTree(directory_, /*reap=*/true));
  std::optional<uint64_t> replaced_bytes;
  if (auto old = tally.files.find(std::string(name)); old != tally.files.end()) {
    replaced_bytes = old->second;
  }
  ASSIGN_OR_RETURN(const std::optional<uint64_t> allowed,
                   Reserve(name, size, quota, tally.usage, replaced_bytes));
  ASSIGN_OR_RETURN(auto parent, directory_.Parent(name, /*create=*/true));
  RETURN_IF_ERROR(CheckReplaceable(parent.first, parent.second, name));
  ASSIGN_OR_RETURN(AtomicFile temporary,
                   AtomicFile::Create(parent.first, TemporaryName(allowed.value_or(0),
                                                                  replaced_bytes.has_value())));
  lock = Fd();

  BufferedFile out(temporary.fd());
  const esdk::EncryptOptions options{.suite_id = esdk::kCommittingSuite,
                                     .frame_length = frame_length,
                                     .context = ContextOf(name),
                                     .plaintext_bytes = size};
  ASSIGN_OR_RETURN(auto encryptor,
                   esdk::Encryptor::Start(materials, options, [&](std::span<const uint8_t> bytes) {
                     return out.Write(bytes);
                   }));
  ASSIGN_OR_RETURN(const uint64_t total, Pump(read, *encryptor, allowed, name));
  RETURN_IF_ERROR(encryptor->Finish());
  RETURN_IF_ERROR(out.Flush());
  // A replacement whose file was deleted meanwhile adds a file after all:
  // the count is checked again, under the lock, before it lands.
  const auto still_fits = [&]() -> Status {
    struct stat info {};
    if (!replaced_bytes || !quota.max_file_count ||
        ::fstatat(parent.first.fd(), parent.second.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
      return OkStatus();
    }
    ASSIGN_OR_RETURN(const Tally now, TallyTree(directory_, /*reap=*/false));
    if (now.usage.files + 1 > *quota.max_file_count) {
      return Status(Code::kQuotaExceeded, "'" + std::string(name) +
                                              "' was deleted meanwhile: storing it again would "
                                              "pass the tenant's max_file_count of " +
                                              std::to_string(*quota.max_file_count));
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(temporary.Commit(directory_, parent.second, name, still_fits));
  return PutResult{
      .bytes = total, .stored_bytes = out.written(), .replaced = replaced_bytes.has_value()};
}

Result<uint64_t> TenantStore::Get(esdk::MaterialsManager& materials, std::string_view name,
                                  const esdk::Sink& sink) const {
  ASSIGN_OR_RETURN(Fd fd, OpenRegular(directory_, name));
  uint64_t total = 0;
  esdk::DecryptOptions options;
  options.required_context = ContextOf(name);
  esdk::Decryptor decryptor(materials, std::move(options), [&](std::span<const uint8_t> plaintext) {
    total += plaintext.size();
    return sink(plaintext);
  });
  std::vector<uint8_t> chunk(kChunkBytes);
  while (true) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error(ErrnoStatus(Code::kInternal, "cannot read '" + std::string(name) + "'", errno));
    }
    if (n == 0) break;
    RETURN_IF_ERROR(decryptor.Write({chunk.data(), static_cast<size_t>(n)}));
  }
  RETURN_IF_ERROR(decryptor.Finish());
  return total;
}

Result<std::vector<StoredFile>> TenantStore::List() const { return ListTree(directory_); }

Result<Usage> TenantStore::Measure() const {
  ASSIGN_OR_RETURN(const Tally tally, TallyTree(directory_, /*reap=*/false));
  return Usage{.files = tally.usage.files - tally.reserved.files,
               .bytes = tally.usage.bytes - tally.reserved.bytes};
}

Status TenantStore::Delete(std::string_view name) const {
  ASSIGN_OR_RETURN(auto parent, directory_.Parent(name, /*create=*/false));
  // Under the tenant's lock, as renames are: a rewrap or a replacement
  // checking the file at commit sees it there or gone, never in between.
  ASSIGN_OR_RETURN(const Fd lock, LockTenant(directory_));
  struct stat info {};
  if (::fstatat(parent.first.fd(), parent.second.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return Status(Code::kNotFound, "no file '" + std::string(name) + "' in the store");
    }
    return ErrnoStatus(Code::kInternal, "cannot stat '" + std::string(name) + "'", errno);
  }
  if (!S_ISREG(info.st_mode)) {
    return Status(Code::kInvalidArgument, "'" + std::string(name) + "' is not a stored file");
  }
  if (::unlinkat(parent.first.fd(), parent.second.c_str(), 0) != 0) {
    return ErrnoStatus(Code::kInternal, "cannot delete '" + std::string(name) + "'", errno);
  }
  if (::fsync(parent.first.fd()) != 0) {
    return ErrnoStatus(Code::kInternal, "cannot sync the store", errno);
  }
  return OkStatus();
}

}  // namespace kmsd::store
