#include <archive.h>
#include <archive_entry.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "client/backup/archive.h"
#include "client/backup/libarchive_support.h"
#include "client/store/beneath.h"
#include "protocol/sha256.h"

namespace kmsd::backup {
namespace {

Status Bad(const std::string& why) { return Status(Code::kInvalidCiphertext, why); }

Status InEntry(const std::string& path, const Status& status) {
  return Status(status.code(), "entry '" + path + "': " + status.message());
}

class Reader {
 public:
  Reader(const Source& source, const EntryVisitor& visitor, const ProgressFn& progress)
      : source_(source), visitor_(visitor), progress_(progress) {}

  Result<Manifest> Run() {
    archive_.reset(archive_read_new());
    if (!archive_ || archive_read_support_format_tar(archive_.get()) != ARCHIVE_OK ||
        archive_read_open(archive_.get(), this, nullptr, &Reader::ReadCallback, nullptr) !=
            ARCHIVE_OK) {
      return Error(Failure("the backup is not a tar archive"));
    }
    while (true) {
      archive_entry* entry = nullptr;
      const int r = archive_read_next_header(archive_.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK) return Error(Failure("a damaged archive after '" + last_ + "'"));
      if (manifest_) return Error(Bad("an entry after the manifest"));
      const char* path = archive_entry_pathname_utf8(entry);
      if (path == nullptr) return Error(Bad("an entry after '" + last_ + "' has no UTF-8 name"));
      last_ = path;
      if (last_ == kManifestName) {
        RETURN_IF_ERROR(ReadManifest(entry));
      } else {
        RETURN_IF_ERROR(ReadEntry(entry));
      }
    }
    RETURN_IF_ERROR(Drain());
    if (!manifest_) return Error(Bad("the archive ends without its manifest"));
    RETURN_IF_ERROR(Compare());
    return std::move(*manifest_);
  }

 private:
  static la_ssize_t ReadCallback(struct archive*, void* self, const void** buffer) {
    auto* reader = static_cast<Reader*>(self);
    auto bytes = reader->source_();
    if (!bytes.has_value()) {
      reader->source_error_ = bytes.error();
      return -1;
    }
    *buffer = bytes->data();
    return static_cast<la_ssize_t>(bytes->size());
  }

  // A libarchive failure, or the Source's own error beneath it.
  Status Failure(const std::string& what) {
    if (source_error_) {
      return last_.empty() ? *source_error_ : InEntry(last_, *source_error_);
    }
    const char* text = archive_error_string(archive_.get());
    return Bad(what + (text != nullptr ? std::string(": ") + text : ""));
  }

  Status Check(const Entry& entry) {
    RETURN_IF_ERROR(CheckEntryPath(entry.path));
    if (seen_.contains(entry.path)) return Bad("it is in the archive twice");
    if (entry.type != EntryType::kDirectory && implied_.contains(entry.path)) {
      return Bad("an earlier entry is under it: it must be a directory");
    }
    const std::vector<std::string_view> parts = store::SplitName(entry.path);
    std::string prefix;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      prefix += (i ? "/" : "") + std::string(parts[i]);
      const auto above = seen_.find(prefix);
      if (above != seen_.end() && above->second != EntryType::kDirectory) {
        return Bad("it is under '" + prefix + "', which is not a directory");
      }
      implied_.insert(prefix);
    }
    if (entry.type == EntryType::kSymlink)
      RETURN_IF_ERROR(CheckLinkTarget(entry.path, entry.target));
    return OkStatus();
  }

  Status ReadEntry(archive_entry* header) {
    Entry entry;
    entry.path = last_;
    if (archive_entry_hardlink(header) != nullptr) {
      return InEntry(last_, Bad("a hard link is not restored"));
    }
    switch (archive_entry_filetype(header)) {
      case AE_IFREG:
        entry.type = EntryType::kFile;
        break;
      case AE_IFDIR:
        entry.type = EntryType::kDirectory;
        break;
      case AE_IFLNK: {
        entry.type = EntryType::kSymlink;
        const char* target = archive_entry_symlink_utf8(header);
        entry.target = target == nullptr ? "" : target;
        break;
      }
      default:
        return InEntry(last_, Bad("not a file, directory or symbolic link"));
    }
    // tar writes a directory's name with a '/' after it.
    if (entry.type == EntryType::kDirectory && entry.path.size() > 1 && entry.path.back() == '/') {
      entry.path.pop_back();
      last_ = entry.path;
    }
    if (entry.type != EntryType::kFile && archive_entry_size(header) > 0) {
      return InEntry(last_, Bad("a directory or link with data"));
    }
    entry.size = entry.type == EntryType::kFile
                     ? static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(header), 0))
                     : 0;
    entry.mode = archive_entry_perm(header) & 07777;
    entry.mtime_ns = static_cast<int64_t>(archive_entry_mtime(header)) * 1'000'000'000 +
                     archive_entry_mtime_nsec(header);
    if (Status status = Check(entry); !status.ok()) {
      return InEntry(last_, Bad(status.message()));
    }
    seen_[entry.path] = entry.type;
    if (visitor_.begin) RETURN_IF_ERROR(visitor_.begin(entry));
    if (entry.type == EntryType::kFile) RETURN_IF_ERROR(ReadData(entry));
    if (visitor_.end) RETURN_IF_ERROR(visitor_.end(entry));
    ++files_;
    if (progress_) progress_(bytes_, files_);
    read_.push_back(std::move(entry));
    return OkStatus();
  }

  // The entry's data in the blocks libarchive holds (no copy).
  Status ReadData(Entry& entry) {
    RETURN_IF_ERROR(digest_.Start());
    uint64_t total = 0;
    const auto take = [&](std::span<const uint8_t> piece) -> Status {
      digest_.Update(piece);
      if (visitor_.data) RETURN_IF_ERROR(visitor_.data(piece));
      total += piece.size();
      bytes_ += piece.size();
      if (progress_) progress_(bytes_, files_);
      return OkStatus();
    };
    while (true) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      const int r = archive_read_data_block(archive_.get(), &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK || offset < 0 || static_cast<uint64_t>(offset) < total ||
          static_cast<uint64_t>(offset) + size > entry.size) {
        return Failure("the entry's data is damaged");
      }
      // A sparse entry (a gap between blocks) is not one a backup writes,
      // and its holes could declare any size: refused.
      if (static_cast<uint64_t>(offset) != total) {
        return InEntry(last_, Bad("a sparse entry is not restored"));
      }
      RETURN_IF_ERROR(take({static_cast<const uint8_t*>(block), size}));
    }
    if (total != entry.size) return InEntry(last_, Bad("a sparse entry is not restored"));
    entry.sha256 = digest_.Finish();
    return OkStatus();
  }

  Status ReadManifest(archive_entry* header) {
    if (archive_entry_filetype(header) != AE_IFREG || archive_entry_size(header) < 0 ||
        static_cast<uint64_t>(archive_entry_size(header)) > kMaxManifestBytes) {
      return Bad("the manifest entry is not a file of a sane size");
    }
    std::string text(static_cast<size_t>(archive_entry_size(header)), '\0');
    size_t done = 0;
    while (done < text.size()) {
      const la_ssize_t n =
          archive_read_data(archive_.get(), text.data() + done, text.size() - done);
      if (n <= 0) return Failure("the manifest is damaged");
      done += static_cast<size_t>(n);
    }
    ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(text));
    manifest_ = std::move(manifest);
    return OkStatus();
  }

  // libarchive stops at the end-of-archive blocks: what follows is read (and
  // so authenticated by the Source) to the end, and must be zeros.
  Status Drain() {
    while (true) {
      auto bytes = source_();
      if (!bytes.has_value()) return InEntry(last_, bytes.error());
      if (bytes->empty()) return OkStatus();
      if (std::any_of(bytes->begin(), bytes->end(), [](uint8_t b) { return b != 0; })) {
        return Bad("data after the end of the archive");
      }
    }
  }

  // The manifest lists exactly what came, as it came.
  Status Compare() {
    std::map<std::string_view, const Entry*> listed;
    for (const Entry& entry : manifest_->entries) listed[entry.path] = &entry;
    for (const Entry& entry : read_) {
      const auto found = listed.find(entry.path);
      if (found == listed.end()) {
        return InEntry(entry.path, Bad("it is not in the manifest"));
      }
      const Entry& expected = *found->second;
      if (expected.type != entry.type)
        return InEntry(entry.path, Bad("its type is not the manifest's"));
      if (expected.size != entry.size || expected.sha256 != entry.sha256) {
        return InEntry(entry.path, Bad("its size or SHA-256 is not the manifest's"));
      }
      if (expected.mode != entry.mode || expected.mtime_ns != entry.mtime_ns ||
          expected.target != entry.target) {
        return InEntry(entry.path, Bad("its mode, time or target is not the manifest's"));
      }
      listed.erase(found);
    }
    if (!listed.empty()) {
      return InEntry(std::string(listed.begin()->first),
                     Bad("the manifest lists it; the archive does not hold it"));
    }
    return OkStatus();
  }

  const Source& source_;
  const EntryVisitor& visitor_;
  const ProgressFn& progress_;
  std::unique_ptr<struct archive, int (*)(struct archive*)> archive_{nullptr, archive_read_free};
  std::optional<Status> source_error_;
  std::optional<Manifest> manifest_;
  std::map<std::string, EntryType> seen_;
  std::set<std::string> implied_;  // directories that entries were under
  std::vector<Entry> read_;
  std::string last_;
  Sha256 digest_;
  uint64_t bytes_ = 0, files_ = 0;
};

}  // namespace

Result<Manifest> ReadArchive(const Source& source, const EntryVisitor& visitor,
                             const ProgressFn& progress) {
  Utf8Locale locale;
  return Reader(source, visitor, progress).Run();
}

}  // namespace kmsd::backup
