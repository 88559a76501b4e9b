#include "pkcs11/softhsm_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace kmsd::pkcs11 {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kTokenObjectName = "token.object";
constexpr std::string_view kDefaultConf = "/etc/softhsm/softhsm2.conf";

// A file's bytes; nullopt when it cannot be read.
std::optional<std::string> ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return bytes;
}

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(Code::kInternal, "cannot write " + path, errno);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

// Replaces `target` with `bytes` so that a crash leaves the old file or the
// new one: a temporary file beside it (mode `mode`), synced, renamed over it,
// and the directory synced.
Status ReplaceFile(const fs::path& target, std::string_view bytes, mode_t mode) {
  const std::string temp = target.string() + ".kmsd-tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoStatus(Code::kInternal, "cannot create " + temp, errno);
  Status status = WriteAll(fd, bytes, temp);
  if (status.ok() && ::fchmod(fd, mode) != 0) {
    status = ErrnoStatus(Code::kInternal, "cannot chmod " + temp, errno);
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = ErrnoStatus(Code::kInternal, "cannot fsync " + temp, errno);
  }
  ::close(fd);
  if (status.ok() && ::rename(temp.c_str(), target.c_str()) != 0) {
    status = ErrnoStatus(Code::kInternal, "cannot rename " + temp, errno);
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  const int dir = ::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return OkStatus();
}

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0600;
  return st.st_mode & 07777;
}

std::string_view TrimBlanks(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

// "key = value" lines, '#' comments: SoftHSM2's configuration file.
std::optional<std::string> ConfValue(const std::string& text, std::string_view key) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    if (TrimBlanks(line.substr(0, equals)) != key) continue;
    return std::string(TrimBlanks(line.substr(equals + 1)));
  }
  return std::nullopt;
}

// The token directories under `token_root` (SoftHSM2 makes one per token).
std::vector<fs::path> TokenDirs(const fs::path& token_root) {
  std::vector<fs::path> dirs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(token_root, error)) {
    if (entry.is_directory(error) && !entry.is_symlink(error)) dirs.push_back(entry.path());
  }
  return dirs;
}

// The file SoftHSM2 2.6 reads: SOFTHSM2_CONF, else the user's own if it
// exists, else the system's.
fs::path SoftHsmConfPath() {
  const char* env = std::getenv("SOFTHSM2_CONF");
  if (env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    const fs::path user = fs::path(home) / ".config/softhsm2/softhsm2.conf";
    std::error_code error;
    if (fs::exists(user, error)) return user;
  }
  return kDefaultConf;
}

}  // namespace

std::optional<fs::path> SoftHsmTokenDir(std::string_view module_path) {
  if (fs::path(module_path).filename().string().find("softhsm") == std::string::npos) {
    return std::nullopt;
  }
  const fs::path conf = SoftHsmConfPath();
  const std::optional<std::string> text = ReadAll(conf);
  if (!text) return std::nullopt;
  if (ConfValue(*text, "objectstore.backend").value_or("file") != "file") return std::nullopt;
  std::optional<std::string> dir = ConfValue(*text, "directories.tokendir");
  if (!dir || dir->empty()) return std::nullopt;
  return fs::path(*dir);
}

Result<std::vector<std::string>> RestoreTokenObjects(const fs::path& token_root) {
  std::vector<std::string> restored;
  for (const fs::path& dir : TokenDirs(token_root)) {
    const fs::path copy_path = dir / kTokenObjectCopyName;
    const fs::path token_object = dir / kTokenObjectName;
    std::error_code error;
    if (!fs::is_regular_file(copy_path, error)) continue;
    const std::optional<std::string> copy = ReadAll(copy_path);
    if (!copy || copy->empty()) continue;
    // Only the empty file a cut-short rewrite leaves: a shorter one may be
    // the token initialized again (its PINs gone), a missing one was removed.
    const uintmax_t size = fs::file_size(token_object, error);
    if (error || size != 0) continue;
    RETURN_IF_ERROR(ReplaceFile(token_object, *copy, ModeOf(copy_path)));
    restored.push_back(token_object.string());
  }
  return restored;
}

Status KeepTokenObjectCopy(const fs::path& token_root, std::string_view serial) {
  if (serial.empty()) return Status(Code::kInternal, "the token reports no serial number");
  std::optional<fs::path> ours;
  std::optional<std::string> bytes;
  for (const fs::path& dir : TokenDirs(token_root)) {
    std::optional<std::string> token_object = ReadAll(dir / kTokenObjectName);
    if (!token_object || token_object->find(serial) == std::string::npos) continue;
    if (ours) {
      return Status(Code::kInternal, "two token directories hold serial number " +
                                         std::string(serial) + " under " + token_root.string());
    }
    ours = dir;
    bytes = std::move(token_object);
  }
  if (!ours) {
    return Status(Code::kNotFound, "no token.object under " + token_root.string() +
                                       " holds serial number " + std::string(serial));
  }
  const fs::path copy_path = *ours / kTokenObjectCopyName;
  if (ReadAll(copy_path) == bytes) return OkStatus();
  return ReplaceFile(copy_path, *bytes, ModeOf(*ours / kTokenObjectName));
}

}  // namespace kmsd::pkcs11
