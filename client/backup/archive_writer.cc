#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "client/backup/archive.h"
#include "client/backup/libarchive_support.h"
#include "client/store/beneath.h"
#include "protocol/sha256.h"
#include "protocol/utf8.h"

namespace kmsd::backup {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

// One archive being written into `sink`, and what it has written.
class Writer {
 public:
  Writer(const Sink& sink, const ProgressFn& progress) : sink_(sink), progress_(progress) {}

  Status Open() {
    archive_.reset(archive_write_new());
    if (!archive_ || archive_write_set_format_pax(archive_.get()) != ARCHIVE_OK ||
        archive_write_set_options(archive_.get(), "hdrcharset=UTF-8") != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(archive_.get(), 64 * 1024) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(archive_.get(), 1) != ARCHIVE_OK ||
        archive_write_open(archive_.get(), this, nullptr, &Writer::WriteCallback, nullptr) !=
            ARCHIVE_OK) {
      return LibarchiveError(archive_.get(), "cannot start the archive");
    }
    return OkStatus();
  }

  // The tree at `directory` (an open descriptor) as `name` and below.
  Status Tree(int directory, const std::string& name, const struct stat& info, int depth) {
    RETURN_IF_ERROR(Header(name, EntryType::kDirectory, info, 0, ""));
    ++summary_.directories;
    manifest_.entries.push_back(EntryOf(name, EntryType::kDirectory, info, 0));
    ASSIGN_OR_RETURN(std::vector<std::string> names, Listing(directory, name));
    for (const std::string& child : names) {
      const std::string path = name + "/" + child;
      if (Status status = CheckEntryPath(path); !status.ok() && IsUtf8(child)) {
        summary_.skipped.push_back(path.substr(0, 64) + "...: " + status.message() +
                                   " (not restorable)");
        continue;
      }
      struct stat child_info {};
      if (::fstatat(directory, child.c_str(), &child_info, AT_SYMLINK_NOFOLLOW) != 0) {
        summary_.skipped.push_back(path + ": " + std::strerror(errno));
        continue;
      }
      if (!IsUtf8(child)) {
        return Status(Code::kInvalidArgument,
                      "cannot back up '" + path + "': its name is not UTF-8");
      }
      if (S_ISDIR(child_info.st_mode)) {
        if (depth >= kMaxDepth) return Status(Code::kInvalidArgument, "'" + path + "' is too deep");
        const int fd =
            ::openat(directory, child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
          summary_.skipped.push_back(path + ": " + std::strerror(errno));
          continue;
        }
        Status status = Tree(fd, path, child_info, depth + 1);
        ::close(fd);
        RETURN_IF_ERROR(status);
      } else if (S_ISREG(child_info.st_mode)) {
        RETURN_IF_ERROR(File(directory, child, path, child_info));
      } else if (S_ISLNK(child_info.st_mode)) {
        RETURN_IF_ERROR(Link(directory, child, path, child_info));
      } else {
        summary_.skipped.push_back(path + ": not a file, directory or symbolic link");
      }
    }
    return OkStatus();
  }

  Status Finish(const std::string& tenant, const std::string& created) {
    manifest_.tenant = tenant;
    manifest_.created = created;
    const std::string text = ManifestJson(manifest_);
    struct stat info {};
    info.st_mode = S_IFREG | 0600;
    info.st_mtim.tv_sec = ::time(nullptr);
    info.st_size = static_cast<off_t>(text.size());
    RETURN_IF_ERROR(Header(std::string(kManifestName), EntryType::kFile, info, text.size(), ""));
    RETURN_IF_ERROR(Data({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
    if (archive_write_close(archive_.get()) != ARCHIVE_OK) {
      return sink_error_ ? *sink_error_ : LibarchiveError(archive_.get(), "cannot end the archive");
    }
    return OkStatus();
  }

  WriteSummary& summary() { return summary_; }

 private:
  static constexpr int kMaxDepth = 1024;

  static la_ssize_t WriteCallback(struct archive*, void* self, const void* buffer, size_t length) {
    auto* writer = static_cast<Writer*>(self);
    Status status = writer->sink_({static_cast<const uint8_t*>(buffer), length});
    if (!status.ok()) {
      writer->sink_error_ = std::move(status);
      return -1;
    }
    return static_cast<la_ssize_t>(length);
  }

  // Names in `directory`, sorted (archives of the same tree are alike).
  Result<std::vector<std::string>> Listing(int directory, const std::string& shown) {
    const int fd = ::openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* listing = fd < 0 ? nullptr : ::fdopendir(fd);
    if (listing == nullptr) {
      if (fd >= 0) ::close(fd);
      return Error(Code::kInternal, "cannot list '" + shown + "': " + std::strerror(errno));
    }
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(listing)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(listing);
    std::sort(names.begin(), names.end());
    return names;
  }

  static Entry EntryOf(const std::string& path, EntryType type, const struct stat& info,
                       uint64_t size) {
    Entry entry;
    entry.path = path;
    entry.type = type;
    entry.size = size;
    entry.mode = info.st_mode & 07777;
    entry.mtime_ns =
        static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
    return entry;
  }

  Status Header(const std::string& path, EntryType type, const struct stat& info, uint64_t size,
                const std::string& target) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                   archive_entry_free);
    archive_entry_update_pathname_utf8(entry.get(), path.c_str());
    archive_entry_set_filetype(entry.get(), type == EntryType::kFile        ? AE_IFREG
                                            : type == EntryType::kDirectory ? AE_IFDIR
                                                                            : AE_IFLNK);
    archive_entry_set_perm(entry.get(), info.st_mode & 07777);
    archive_entry_set_mtime(entry.get(), info.st_mtim.tv_sec, info.st_mtim.tv_nsec);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    if (type == EntryType::kSymlink) archive_entry_update_symlink_utf8(entry.get(), target.c_str());
    if (archive_write_header(archive_.get(), entry.get()) != ARCHIVE_OK) {
      return sink_error_ ? *sink_error_
                         : LibarchiveError(archive_.get(), "cannot write the entry '" + path + "'");
    }
    return OkStatus();
  }

  Status Data(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      const la_ssize_t n = archive_write_data(archive_.get(), bytes.data(), bytes.size());
      if (n <= 0) return sink_error_ ? *sink_error_ : LibarchiveError(archive_.get(), "write");
      bytes = bytes.subspan(static_cast<size_t>(n));
    }
    return OkStatus();
  }

  Status File(int directory, const std::string& name, const std::string& path,
              const struct stat& info) {
    // Non-blocking, and checked again once open: a FIFO put in its place
    // after the listing is not waited on.
    const int fd =
        ::openat(directory, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      summary_.skipped.push_back(path + ": " + std::strerror(errno));
      return OkStatus();
    }
    const store::Fd closer(fd);
    struct stat opened {};
    if (::fstat(fd, &opened) != 0 || !S_ISREG(opened.st_mode)) {
      summary_.skipped.push_back(path + ": no longer a regular file");
      return OkStatus();
    }
    const uint64_t size = static_cast<uint64_t>(opened.st_size);
    RETURN_IF_ERROR(Header(path, EntryType::kFile, info, size, ""));
    RETURN_IF_ERROR(digest_.Start());
    chunk_.resize(kChunkBytes);
    uint64_t done = 0;
    bool shrank = false;
    while (done < size) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size - done));
      ssize_t n = ::read(fd, chunk_.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return Status(Code::kInternal, "cannot read '" + path + "': " + std::strerror(errno));
      if (n == 0) {  // shrank meanwhile: zeros, as the header promised the size
        std::fill_n(chunk_.begin(), want, 0);
        n = static_cast<ssize_t>(want);
        shrank = true;
      }
      digest_.Update({chunk_.data(), static_cast<size_t>(n)});
      RETURN_IF_ERROR(Data({chunk_.data(), static_cast<size_t>(n)}));
      done += static_cast<uint64_t>(n);
      summary_.bytes += static_cast<uint64_t>(n);
      if (progress_) progress_(summary_.bytes, summary_.files);
    }
    OPENSSL_cleanse(chunk_.data(), chunk_.size());
    if (shrank) summary_.changed.push_back(path);
    Entry entry = EntryOf(path, EntryType::kFile, info, size);
    entry.sha256 = digest_.Finish();
    manifest_.entries.push_back(std::move(entry));
    ++summary_.files;
    if (progress_) progress_(summary_.bytes, summary_.files);
    return OkStatus();
  }

  Status Link(int directory, const std::string& name, const std::string& path,
              const struct stat& info) {
    std::string target(4096, '\0');
    const ssize_t n = ::readlinkat(directory, name.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<size_t>(n) >= target.size()) {
      summary_.skipped.push_back(path + ": cannot read the link");
      return OkStatus();
    }
    target.resize(static_cast<size_t>(n));
    if (!IsUtf8(target)) {
      return Status(Code::kInvalidArgument,
                    "cannot back up the link '" + path + "': its target is not UTF-8");
    }
    // A restore refuses links out of the tree: such a link is not stored.
    if (Status status = CheckLinkTarget(path, target); !status.ok()) {
      summary_.skipped.push_back(path + ": " + status.message() + " (not restorable)");
      return OkStatus();
    }
    RETURN_IF_ERROR(Header(path, EntryType::kSymlink, info, 0, target));
    Entry entry = EntryOf(path, EntryType::kSymlink, info, 0);
    entry.target = target;
    manifest_.entries.push_back(std::move(entry));
    ++summary_.symlinks;
    return OkStatus();
  }

  const Sink& sink_;
  const ProgressFn& progress_;
  std::unique_ptr<struct archive, int (*)(struct archive*)> archive_{nullptr, archive_write_free};
  std::optional<Status> sink_error_;
  Manifest manifest_;
  WriteSummary summary_;
  std::vector<uint8_t> chunk_;
  Sha256 digest_;
};

}  // namespace

Result<WriteSummary> WriteArchive(const std::vector<TreeSource>& sources, const std::string& tenant,
                                  const std::string& created, const Sink& sink,
                                  const ProgressFn& progress) {
  Utf8Locale locale;
  Writer writer(sink, progress);
  RETURN_IF_ERROR(writer.Open());
  for (const TreeSource& source : sources) {
    RETURN_IF_ERROR(CheckEntryPath(source.name));
    if (source.name.find('/') != std::string::npos || source.name == kManifestName) {
      return Error(Code::kInvalidArgument, "'" + source.name + "' cannot be a top-level name");
    }
    const int fd = ::open(source.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return Error(Code::kInvalidArgument,
                   "cannot back up '" + source.directory + "': " + std::strerror(errno));
    }
    struct stat info {};
    Status status = ::fstat(fd, &info) == 0
                        ? writer.Tree(fd, source.name, info, 0)
                        : Status(Code::kInternal, "cannot stat '" + source.directory + "'");
    ::close(fd);
    RETURN_IF_ERROR(status);
  }
  RETURN_IF_ERROR(writer.Finish(tenant, created));
  return std::move(writer.summary());
}

}  // namespace kmsd::backup
