#include "tools/kmsctl/io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "os/paths.h"
#include "tools/kmsctl/output.h"

namespace kmsd::kmsctl {
namespace {

constexpr size_t kInitialCapacity = 64 * 1024;

std::string Shown(const std::string& path) { return IsStdio(path) ? "stdin" : "'" + path + "'"; }

Status ReadError(const std::string& path, int error) {
  return Status(Code::kInvalidArgument, "cannot read " + Shown(path) + ": " + std::strerror(error));
}

Status TooLarge(const std::string& path) {
  return Status(Code::kInvalidArgument,
                Shown(path) + " is larger than " + std::to_string(kMaxInputBytes) + " bytes");
}

// The temporary file being written, for a signal that ends kmsctl: it is
// removed, so that no partial output (a plaintext, maybe) stays beside the
// target. kmsctl writes one at a time.
char g_temporary[4096];
volatile sig_atomic_t g_has_temporary = 0;

void RemoveTemporaryAndDie(int signal) {
  if (g_has_temporary) ::unlink(g_temporary);
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

void WatchTemporary(const std::string& path) {
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_handler = RemoveTemporaryAndDie;
    sigemptyset(&action.sa_mask);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(signal, &action, nullptr);
    return true;
  }();
  (void)installed;
  if (path.size() >= sizeof g_temporary) return;
  g_has_temporary = 0;
  std::memcpy(g_temporary, path.c_str(), path.size() + 1);
  g_has_temporary = 1;
}

void ForgetTemporary() { g_has_temporary = 0; }

Status WriteError(const std::string& what, const std::string& path, int error) {
  return Status(Code::kInternal, "cannot " + what + " '" + path + "': " + std::strerror(error));
}

}  // namespace

bool IsStdio(const std::string& path) { return path.empty() || path == "-"; }

// Reads `path` to its end into a SecretBuffer that grows by doubling; every
// outgrown copy is wiped when it is replaced.
Result<SecretBuffer> ReadInput(const std::string& path) {
  ASSIGN_OR_RETURN(InputStream input, InputStream::Open(path));
  const size_t size_hint = std::min<uint64_t>(input.size().value_or(0), kMaxInputBytes);
  SecretBuffer buffer(std::max(kInitialCapacity, size_hint + 1));
  size_t used = 0;
  while (true) {
    if (used == buffer.size()) {
      if (used > kMaxInputBytes) return Error(TooLarge(path));
      SecretBuffer grown(std::min(buffer.size() * 2, kMaxInputBytes + 1));
      std::memcpy(grown.RevealMutableData(), buffer.RevealData(), used);
      buffer = std::move(grown);
    }
    ASSIGN_OR_RETURN(const size_t n,
                     input.Read({buffer.RevealMutableData() + used, buffer.size() - used}));
    if (n == 0) break;
    used += n;
  }
  if (used > kMaxInputBytes) return Error(TooLarge(path));
  buffer.Shrink(used);
  return buffer;
}

Status CheckOutputPath(const std::string& path) {
  if (IsStdio(path)) return OkStatus();
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return Status(Code::kInvalidArgument, "output '" + path + "' is a directory");
  }
  const std::string directory = DirectoryOf(path);
  if (::stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Status(Code::kInvalidArgument,
                  "directory '" + directory + "' of output '" + path + "' does not exist");
  }
  if (::access(directory.c_str(), W_OK | X_OK) != 0) {
    return Status(Code::kInvalidArgument, "cannot write in directory '" + directory +
                                              "' of output '" + path +
                                              "': " + std::strerror(errno));
  }
  return OkStatus();
}

Status WriteOutput(const std::string& path, std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(OutputStream out, OutputStream::Open(path));
  RETURN_IF_ERROR(out.Write(bytes));
  return out.Commit();
}

Result<OutputStream> OutputStream::Open(const std::string& path) {
  if (IsStdio(path)) return OutputStream(path, "", STDOUT_FILENO);
  const std::filesystem::path target(path);
  std::string temporary = DirectoryOf(path) + "/." + target.filename().string() + ".kmsctl-XXXXXX";
  const int fd = ::mkostemp(temporary.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return Error(WriteError("create a temporary file for", path, errno));
  WatchTemporary(temporary);
  return OutputStream(path, std::move(temporary), fd);
}

OutputStream::OutputStream(OutputStream&& other) noexcept
    : path_(std::move(other.path_)),
      temporary_(std::move(other.temporary_)),
      fd_(std::exchange(other.fd_, -1)),
      committed_(std::exchange(other.committed_, true)) {}

OutputStream::~OutputStream() {
  if (temporary_.empty() || committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temporary_.c_str());
  ForgetTemporary();
}

Status OutputStream::Write(std::span<const uint8_t> bytes) {
  return WriteAll(fd_, bytes, temporary_.empty() ? "to stdout" : "'" + temporary_ + "'");
}

Status OutputStream::Commit() {
  if (temporary_.empty()) return OkStatus();
  if (::fsync(fd_) != 0) return WriteError("flush", temporary_, errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return WriteError("close", temporary_, errno);  // the destructor removes it
  if (std::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary_.c_str());
    ForgetTemporary();
    committed_ = true;  // nothing left to remove
    return WriteError("rename a temporary file to", path_, error);
  }
  ForgetTemporary();
  committed_ = true;
  return OkStatus();
}

Result<InputStream> InputStream::Open(const std::string& path) {
  if (IsStdio(path)) return InputStream(path, STDIN_FILENO, std::nullopt);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(ReadError(path, errno));
  struct stat info {};
  std::optional<uint64_t> size;
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode)) size = static_cast<uint64_t>(info.st_size);
  return InputStream(path, fd, size);
}

InputStream::InputStream(InputStream&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

InputStream::~InputStream() {
  if (fd_ > STDIN_FILENO) ::close(fd_);
}

Result<size_t> InputStream::Read(std::span<uint8_t> buffer) {
  while (true) {
    const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Error(ReadError(path_, errno));
  }
}

}  // namespace kmsd::kmsctl
