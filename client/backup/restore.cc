// RestoreBackup (client/backup/backup.h): verify, then write into a new
// directory beside the target and rename it into place.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "client/backup/backup.h"
#include "client/backup/file_writers.h"
#include "client/store/atomic_file.h"
#include "client/store/beneath.h"
#include "os/paths.h"
#include "protocol/hex.h"

namespace kmsd::backup {

namespace {

namespace fs = std::filesystem;

// The target must not exist, or be an empty directory (rename replaces one).
Status CheckTarget(const std::string& target) {
  std::error_code error;
  const fs::file_status status = fs::symlink_status(target, error);
  if (!fs::exists(status)) return OkStatus();
  if (fs::is_directory(status) && fs::is_empty(target, error)) return OkStatus();
  return Status(Code::kAlreadyExists,
                "'" + target + "' exists: restore into a new or an empty directory");
}

// Writes the entries the second pass hands on beneath `root`.
class Writer {
 public:
  Writer(const store::Beneath& root, const Manifest& verified) : root_(root) {
    for (const Entry& entry : verified.entries) verified_[entry.path] = &entry;
  }

  EntryVisitor Visitor() {
    return {.begin = [this](const Entry& entry) { return Begin(entry); },
            .data = [this](std::span<const uint8_t> bytes) { return files_.Write(bytes); },
            .end = [this](const Entry& entry) { return End(entry); }};
  }

  // Waits for the files, then sets the directories' modes and times,
  // deepest first (their children are done).
  Status Finish() {
    RETURN_IF_ERROR(files_.Finish());
    for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
      ASSIGN_OR_RETURN(auto parent, root_.Parent(it->path, false));
      const timespec times[2] = {TimeOf(it->mtime_ns), TimeOf(it->mtime_ns)};
      if (::fchmodat(parent.first.fd(), parent.second.c_str(), it->mode & 0777, 0) != 0 ||
          ::utimensat(parent.first.fd(), parent.second.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(Code::kInternal, "cannot set the mode or time of '" + it->path + "'",
                           errno);
      }
    }
    return OkStatus();
  }

  RestoreSummary& summary() { return summary_; }

 private:
  Status Begin(const Entry& entry) {
    // The second pass must read what the first verified (files: at End,
    // once their digest is known).
    const auto verified = verified_.find(entry.path);
    if (verified == verified_.end() ||
        (entry.type != EntryType::kFile && !(*verified->second == entry))) {
      return Status(Code::kInvalidCiphertext,
                    "entry '" + entry.path + "' changed between the two passes");
    }
    // Parents the archive did not list are made (0700).
    ASSIGN_OR_RETURN(auto parent, ParentOf(entry.path));
    const std::string& leaf = parent.second;
    switch (entry.type) {
      case EntryType::kDirectory:
        if (::mkdirat(parent.first->fd(), leaf.c_str(), 0700) != 0 && errno != EEXIST) {
          return ErrnoStatus(Code::kInternal, "cannot make '" + entry.path + "'", errno);
        }
        directories_.push_back(entry);
        ++summary_.directories;
        return OkStatus();
      case EntryType::kSymlink: {
        if (::symlinkat(entry.target.c_str(), parent.first->fd(), leaf.c_str()) != 0) {
          return ErrnoStatus(Code::kInternal, "cannot make the link '" + entry.path + "'", errno);
        }
        const timespec times[2] = {TimeOf(entry.mtime_ns), TimeOf(entry.mtime_ns)};
        ::utimensat(parent.first->fd(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
        ++summary_.symlinks;
        return OkStatus();
      }
      case EntryType::kFile: {
        ASSIGN_OR_RETURN(store::Fd file,
                         parent.first->OpenFile(leaf, O_CREAT | O_EXCL | O_WRONLY, 0600));
        return files_.Open(std::move(file));
      }
    }
    return OkStatus();
  }

  // The directory `path` is in (made, 0700, with those above it if the
  // archive did not list them) and its last component. Entries come
  // directory by directory: the last directory is kept open.
  Result<std::pair<const store::Beneath*, std::string>> ParentOf(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string directory = slash == std::string::npos ? "" : path.substr(0, slash);
    const std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
    if (directory.empty()) return std::pair<const store::Beneath*, std::string>(&root_, leaf);
    if (!cached_ || cached_path_ != directory) {
      cached_.reset();
      ASSIGN_OR_RETURN(auto parent, root_.Parent(directory + "/" + leaf, /*create=*/true));
      cached_.emplace(std::move(parent.first));
      cached_path_ = directory;
    }
    return std::pair<const store::Beneath*, std::string>(&*cached_, leaf);
  }

  Status End(const Entry& entry) {
    if (entry.type != EntryType::kFile) return OkStatus();
    // The second pass must read what the first verified.
    const auto verified = verified_.find(entry.path);
    if (verified == verified_.end() || verified->second->sha256 != entry.sha256 ||
        verified->second->size != entry.size) {
      return Status(Code::kInvalidCiphertext,
                    "entry '" + entry.path + "' changed between the two passes");
    }
    ++summary_.files;
    summary_.bytes += entry.size;
    return files_.Close(entry.mode, entry.mtime_ns, entry.size, entry.path);
  }

  const store::Beneath& root_;
  std::map<std::string_view, const Entry*> verified_;
  std::vector<Entry> directories_;
  FileWriters files_{std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4)};
  std::optional<store::Beneath> cached_;
  std::string cached_path_;
  RestoreSummary summary_;
};

}  // namespace

uint64_t FileBytes(const Manifest& manifest) {
  uint64_t total = 0;
  for (const Entry& entry : manifest.entries) {
    if (entry.type == EntryType::kFile) total += entry.size;
  }
  return total;
}

Result<RestoreSummary> RestoreBackup(esdk::MaterialsManager& materials, int fd,
                                     const std::string& target_as_given,
                                     const RestoreProgress& progress) {
  // "out/" is "out": the staging directory goes beside it, not into it.
  std::string target = target_as_given;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  RETURN_IF_ERROR(CheckTarget(target));
  esdk::Bytes first_id, second_id;
  ASSIGN_OR_RETURN(const Manifest verified,
                   ReadBackup(materials, fd, EntryVisitor{}, progress.verifying, &first_id));
  const ProgressFn restoring = progress.restoring ? progress.restoring(verified) : ProgressFn();
  const std::string staging = target + ".kmsd-restore-" + RandomHex(6);
  if (::mkdir(staging.c_str(), 0700) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Error(Code::kInvalidArgument,
                   "the directory '" + target + "' would be in does not exist");
    }
    return Error(ErrnoStatus(Code::kInternal, "cannot make '" + staging + "'", errno));
  }
  // Whatever fails from here removes the staging directory.
  struct Cleanup {
    std::string path;
    bool keep = false;
    ~Cleanup() {
      std::error_code ignored;
      if (!keep) fs::remove_all(path, ignored);
    }
  } cleanup{staging};
  ASSIGN_OR_RETURN(const store::Beneath root,
                   store::Beneath::Open(staging, store::Resolver::kAuto, store::Names::kTree));
  Writer writer(root, verified);
  ASSIGN_OR_RETURN(const Manifest second,
                   ReadBackup(materials, fd, writer.Visitor(), restoring, &second_id));
  if (second_id != first_id || second.entries.size() != verified.entries.size()) {
    return Error(Code::kInvalidCiphertext, "the backup changed between the two passes");
  }
  RETURN_IF_ERROR(writer.Finish());
  if (::syncfs(root.fd()) != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot sync the restored tree", errno));
  }
  RETURN_IF_ERROR(CheckTarget(target));
  if (::rename(staging.c_str(), target.c_str()) != 0) {
    return Error(
        ErrnoStatus(Code::kInternal, "cannot rename '" + staging + "' to '" + target + "'", errno));
  }
  cleanup.keep = true;
  const int parent = ::open(DirectoryOf(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent >= 0) {
    ::fsync(parent);
    ::close(parent);
  }
  return std::move(writer.summary());
}

}  // namespace kmsd::backup
