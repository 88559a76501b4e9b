#include "client/store/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>

#include "client/store/tree.h"
#include "protocol/hex.h"

namespace kmsd::store {
namespace {

constexpr std::string_view kLockFile = ".kmsd-lock";

Status Sync(int fd) {
  if (::fsync(fd) != 0) return ErrnoStatus(Code::kInternal, "cannot sync the store", errno);
  return OkStatus();
}

}  // namespace

Result<Fd> LockTenant(const Beneath& tenant_directory) {
  ASSIGN_OR_RETURN(Fd lock, tenant_directory.OpenReserved(kLockFile, O_CREAT | O_RDWR, 0600));
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Error(ErrnoStatus(Code::kInternal, "cannot lock the store", errno));
  }
  return lock;
}

std::string TemporaryName(uint64_t reserved_bytes, bool replacing) {
  return std::string(kTemporaryPrefix) + RandomHex(8) + "-" + std::to_string(reserved_bytes) +
         (replacing ? "-r" : "-n");
}

Status WriteAll(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(Code::kInternal, "cannot write to the store", errno);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return OkStatus();
}

Result<AtomicFile> AtomicFile::Create(const Beneath& directory, std::string temporary_name) {
  ASSIGN_OR_RETURN(Fd fd, directory.OpenReserved(temporary_name, O_CREAT | O_EXCL | O_RDWR, 0600));
  AtomicFile file(directory, std::move(temporary_name), std::move(fd));
  // Locked while this writer lives: a lock that can be taken means it died.
  if (::flock(file.fd(), LOCK_EX | LOCK_NB) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot lock a temporary file", errno));
  }
  return file;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : directory_(other.directory_),
      name_(std::move(other.name_)),
      fd_(std::move(other.fd_)),
      committed_(std::exchange(other.committed_, true)) {}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlinkat(directory_->fd(), name_.c_str(), 0);
}

Status AtomicFile::Commit(const Beneath& tenant_directory, const std::string& target,
                          std::string_view shown, const std::function<Status()>& before_rename) {
  RETURN_IF_ERROR(Sync(fd_.get()));
  {
    ASSIGN_OR_RETURN(Fd lock, LockTenant(tenant_directory));
    if (before_rename) RETURN_IF_ERROR(before_rename());
    if (::renameat(directory_->fd(), name_.c_str(), directory_->fd(), target.c_str()) != 0) {
      const int error = errno;
      if (error == EISDIR || error == ENOTEMPTY || error == EEXIST) {
        return Status(Code::kInvalidArgument,
                      "the name '" + std::string(shown) + "' is a directory");
      }
      return ErrnoStatus(Code::kInternal, "cannot rename into the store", error);
    }
    committed_ = true;
  }
  return Sync(directory_->fd());
}

}  // namespace kmsd::store
