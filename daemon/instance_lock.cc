#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

namespace kmsd {

Result<InstanceLock> InstanceLock::Take(const std::string& keystore_path) {
  std::string directory = std::filesystem::path(keystore_path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return InstanceLock(-1);
    return Error(
        ErrnoStatus(Code::kInternal, "cannot open the keystore's directory " + directory, errno));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) {
      return Error(Status(Code::kUnavailable,
                          "another kmsd is using the keystore in " + directory +
                              " (it holds the directory's lock): one kmsd per keystore"));
    }
    return Error(ErrnoStatus(Code::kInternal, "cannot lock " + directory, error));
  }
  return InstanceLock(fd);
}

InstanceLock::InstanceLock(InstanceLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

InstanceLock::~InstanceLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace kmsd
