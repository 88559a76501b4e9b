#include "client/store/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>

namespace kmsd::store {
namespace {

// Deeper directories than a name can reach are not the store's.
constexpr int kMaxDepth = static_cast<int>(kMaxNameBytes / 2);

// Calls `file` for each regular file under `directory` (its name relative to
// the tenant's directory and its stat) and `temporary` for each temporary
// file (its directory and own name).
struct Visitor {
  std::function<Status(const std::string& name, int dirfd, const struct stat& info)> file;
  std::function<Status(const Beneath& directory, const std::string& entry)> temporary;
};

Status Walk(const Beneath& directory, const std::string& prefix, int depth, const Visitor& visit) {
  // A descriptor of its own: a dup would share the held one's position,
  // which another listing (another thread) may have moved.
  const int copy = ::openat(directory.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) {
    return Status(Code::kInternal, std::string("cannot list the store: ") + std::strerror(errno));
  }
  DIR* listing = ::fdopendir(copy);
  if (listing == nullptr) {
    ::close(copy);
    return Status(Code::kInternal, std::string("cannot list the store: ") + std::strerror(errno));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, ::closedir);
  std::vector<std::string> subdirectories;  // walked after this listing is closed
  while (dirent* entry = ::readdir(listing)) {
    const std::string entry_name = entry->d_name;
    if (entry_name == "." || entry_name == "..") continue;
    struct stat info {};
    if (::fstatat(directory.fd(), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (entry_name.starts_with(kReservedPrefix)) {
      if (S_ISREG(info.st_mode) && entry_name.starts_with(kTemporaryPrefix)) {
        RETURN_IF_ERROR(visit.temporary(directory, entry_name));
      }
      continue;
    }
    if (S_ISDIR(info.st_mode)) {
      subdirectories.push_back(entry_name);
    } else if (S_ISREG(info.st_mode)) {
      RETURN_IF_ERROR(visit.file(prefix + entry_name, directory.fd(), info));
    }
  }
  closer.reset();
  if (depth >= kMaxDepth) return OkStatus();
  for (const std::string& entry_name : subdirectories) {
    auto child = directory.Child(entry_name, /*create=*/false);
    if (!child.has_value()) continue;  // gone meanwhile, or not ours to follow
    RETURN_IF_ERROR(Walk(*child, prefix + entry_name + "/", depth + 1, visit));
  }
  return OkStatus();
}

// The plaintext bytes of the stored file `entry` in `dirfd`, from its header
// and size; nullopt when it is not a message the store writes.
std::optional<uint64_t> PlaintextBytes(int dirfd, const std::string& entry, uint64_t size) {
  const int fd = ::openat(dirfd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<esdk::ParsedHeader> parsed = ReadHeader(fd);
  ::close(fd);
  if (!parsed) return std::nullopt;
  return esdk::FramedPlaintextBytes(parsed->header, parsed->size, size);
}

std::string BaseName(const std::string& name) {
  const size_t slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

// What a temporary file's name says it reserved; nullopt if it is not one.
std::optional<std::pair<uint64_t, bool>> ReservationOf(const std::string& entry) {
  const size_t last = entry.rfind('-');
  const size_t before = last == std::string::npos ? last : entry.rfind('-', last - 1);
  if (before == std::string::npos || before < kTemporaryPrefix.size()) return std::nullopt;
  const std::string bytes = entry.substr(before + 1, last - before - 1);
  const std::string kind = entry.substr(last + 1);
  if (bytes.empty() || bytes.size() > 19 ||
      !std::all_of(bytes.begin(), bytes.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (kind != "n" && kind != "r")) {
    return std::nullopt;
  }
  return std::pair<uint64_t, bool>(std::stoull(bytes), kind == "n");
}

// Whether the writer of a temporary file still lives (holds its lock). A
// dead one's file is removed when `reap`.
Result<bool> Alive(const Beneath& directory, const std::string& entry, bool reap) {
  auto fd = directory.OpenReserved(entry, O_RDONLY | O_NONBLOCK);
  if (!fd.has_value()) return false;  // renamed or removed meanwhile
  if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) return true;
  if (reap) ::unlinkat(directory.fd(), entry.c_str(), 0);
  return false;
}

}  // namespace

Result<Tally> TallyTree(const Beneath& directory, bool reap) {
  Tally tally;
  Visitor visit;
  visit.file = [&](const std::string& name, int dirfd, const struct stat& info) {
    const uint64_t size = static_cast<uint64_t>(info.st_size);
    const uint64_t bytes = PlaintextBytes(dirfd, BaseName(name), size).value_or(size);
    tally.files[name] = bytes;
    ++tally.usage.files;
    tally.usage.bytes += bytes;
    return OkStatus();
  };
  visit.temporary = [&](const Beneath& at, const std::string& entry) -> Status {
    const auto reservation = ReservationOf(entry);
    ASSIGN_OR_RETURN(const bool alive, Alive(at, entry, reap));
    if (!alive || !reservation) return OkStatus();
    const uint64_t files = reservation->second ? 1 : 0;
    tally.usage.files += files;
    tally.reserved.files += files;
    tally.usage.bytes += reservation->first;
    tally.reserved.bytes += reservation->first;
    return OkStatus();
  };
  RETURN_IF_ERROR(Walk(directory, "", 0, visit));
  return tally;
}

Result<std::vector<StoredFile>> ListTree(const Beneath& directory) {
  std::vector<StoredFile> files;
  Visitor visit;
  visit.file = [&](const std::string& name, int dirfd, const struct stat& info) {
    const uint64_t size = static_cast<uint64_t>(info.st_size);
    files.push_back({.name = name,
                     .bytes = PlaintextBytes(dirfd, BaseName(name), size),
                     .stored_bytes = size,
                     .modified_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 +
                                    info.st_mtim.tv_nsec});
    return OkStatus();
  };
  visit.temporary = [](const Beneath&, const std::string&) { return OkStatus(); };
  RETURN_IF_ERROR(Walk(directory, "", 0, visit));
  std::sort(files.begin(), files.end(),
            [](const StoredFile& a, const StoredFile& b) { return a.name < b.name; });
  return files;
}

}  // namespace kmsd::store
