// Backups without kmsd (a raw AES keyring stands in): round trips, and
// archives crafted with libarchive to escape, lie or break, each refused
// before anything is written.
#include "client/backup/backup.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "client/backup/file_writers.h"
#include "client/backup/retention.h"
#include "client/esdk/raw_aes_keyring.h"
#include "client/store/beneath.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

// Crafted entries name only the fields they need.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace kmsd::backup {
namespace {

namespace fs = std::filesystem;
using esdk::Bytes;
using ::testing::HasSubstr;

// One entry of a crafted archive.
struct Crafted {
  std::string path;
  unsigned type = AE_IFREG;
  std::string data;
  std::string target;     // symlink target or hard link
  bool listed = true;     // in the manifest
  std::string digest_of;  // the manifest's digest is of this instead of `data`
  bool archived = true;   // in the archive
  int64_t hole = 0;       // > 0: a sparse entry, its data after a hole this long
};

Entry ManifestEntry(const Crafted& crafted) {
  Entry entry;
  entry.path = crafted.path;
  entry.type = crafted.type == AE_IFDIR   ? EntryType::kDirectory
               : crafted.type == AE_IFLNK ? EntryType::kSymlink
                                          : EntryType::kFile;
  entry.mode = 0644;
  entry.mtime_ns = 1'700'000'000'000'000'000;
  entry.target = entry.type == EntryType::kSymlink ? crafted.target : "";
  if (entry.type == EntryType::kFile) {
    const std::string& digested = crafted.digest_of.empty() ? crafted.data : crafted.digest_of;
    entry.size = crafted.data.size();
    SHA256(reinterpret_cast<const uint8_t*>(digested.data()), digested.size(), entry.sha256.data());
  }
  return entry;
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directory(dir_ / "src"); }

  Status Create(const std::string& archive, std::vector<TreeSource> sources,
                const std::string& created = "2026-12-01T00:00:00Z",
                WriteSummary* summary = nullptr) {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    auto made =
        CreateBackup(materials_, "acme", created, sources, [&](std::span<const uint8_t> bytes) {
          out.write(reinterpret_cast<const char*>(bytes.data()),
                    static_cast<std::streamsize>(bytes.size()));
          return OkStatus();
        });
    if (made.has_value() && summary != nullptr) *summary = *made;
    return made.has_value() ? OkStatus() : made.error();
  }

  Result<Manifest> Verify(const std::string& archive) {
    const store::Fd fd(::open(archive.c_str(), O_RDONLY | O_CLOEXEC));
    return VerifyBackup(materials_, fd.get());
  }
  Result<RestoreSummary> Restore(const std::string& archive, const std::string& to) {
    const store::Fd fd(::open(archive.c_str(), O_RDONLY | O_CLOEXEC));
    return RestoreBackup(materials_, fd.get(), to);
  }

  // An archive of `entries` (then a manifest of the listed ones, unless
  // `manifest` is false, and `after` after it), encrypted as a backup.
  std::string Craft(const std::vector<Crafted>& entries, bool manifest = true,
                    const std::vector<Crafted>& after = {}) {
    std::string tar;
    struct archive* a = archive_write_new();
    archive_write_set_format_pax(a);
    archive_write_open(
        a, &tar, nullptr,
        [](struct archive*, void* out, const void* buffer, size_t length) -> la_ssize_t {
          static_cast<std::string*>(out)->append(static_cast<const char*>(buffer), length);
          return static_cast<la_ssize_t>(length);
        },
        nullptr);
    Manifest listed{.tenant = "acme", .created = "2026-12-01T00:00:00Z", .entries = {}};
    const auto add = [&](const Crafted& crafted) {
      if (crafted.listed) listed.entries.push_back(ManifestEntry(crafted));
      if (!crafted.archived) return;
      archive_entry* entry = archive_entry_new();
      archive_entry_set_pathname(entry, crafted.path.c_str());
      archive_entry_set_filetype(entry, crafted.type);
      archive_entry_set_perm(entry, 0644);
      archive_entry_set_mtime(entry, 1'700'000'000, 0);
      if (crafted.type == AE_IFLNK) archive_entry_set_symlink(entry, crafted.target.c_str());
      if (crafted.type == AE_IFREG && !crafted.target.empty()) {
        archive_entry_set_hardlink(entry, crafted.target.c_str());
      }
      archive_entry_set_size(entry, static_cast<la_int64_t>(crafted.data.size()) + crafted.hole);
      if (crafted.hole > 0) {
        archive_entry_sparse_add_entry(entry, crafted.hole,
                                       static_cast<la_int64_t>(crafted.data.size()));
      }
      archive_write_header(a, entry);
      archive_write_data(a, crafted.data.data(), crafted.data.size());
      archive_entry_free(entry);
    };
    for (const Crafted& crafted : entries) add(crafted);
    if (manifest)
      add({.path = std::string(kManifestName), .data = ManifestJson(listed), .listed = false});
    for (const Crafted& crafted : after) add(crafted);
    archive_write_close(a);
    archive_write_free(a);
    auto message =
        esdk::EncryptMessage(materials_,
                             {.suite_id = esdk::kCommittingSuite,
                              .frame_length = 4096,
                              .context = {{std::string(kContextTenant), "acme"},
                                          {std::string(kContextCreated), "2026-12-01T00:00:00Z"}},
                              .plaintext_bytes = std::nullopt},
                             Bytes(tar.begin(), tar.end()));
    EXPECT_TRUE(message.has_value());
    const std::string path = dir_ / ("crafted-" + std::to_string(++crafted_));
    testing::WriteFileBytes(path, std::string(message->begin(), message->end()));
    return path;
  }

  // Verify and restore both refuse `archive` with INVALID_CIPHERTEXT saying
  // `why`, and restore leaves nothing behind.
  void ExpectRefused(const std::string& archive, const std::string& why) {
    auto verified = Verify(archive);
    ASSERT_FALSE(verified.has_value()) << why;
    EXPECT_EQ(verified.error().code(), Code::kInvalidCiphertext) << verified.error().ToString();
    EXPECT_THAT(verified.error().message(), HasSubstr(why));
    const std::string to = dir_ / "restored";
    auto restored = Restore(archive, to);
    ASSERT_FALSE(restored.has_value());
    EXPECT_EQ(restored.error().code(), Code::kInvalidCiphertext);
    EXPECT_FALSE(fs::exists(to));
    for (const auto& item : fs::directory_iterator(dir_.path())) {
      EXPECT_EQ(item.path().filename().string().find(".kmsd-restore-"), std::string::npos)
          << item.path();
    }
    EXPECT_FALSE(fs::exists("/tmp/kmsd-escaped"));
  }

  testing::TempDir dir_;
  std::unique_ptr<esdk::RawAesKeyring> keyring_ = std::move(
      *esdk::RawAesKeyring::Create("escrow", "k1", SecretBuffer::CopyOf(Bytes(32, 0x42))));
  esdk::KeyringMaterials materials_{*keyring_};
  int crafted_ = 0;
};

TEST_F(BackupTest, ATreeRoundTripsWithModesTimesLinksAndUnusualNames) {
  const std::string src = dir_ / "src";
  for (int i = 0; i < 300; ++i) {
    const std::string sub = src + "/d" + std::to_string(i % 7);
    fs::create_directories(sub);
    testing::WriteFileBytes(sub + "/f" + std::to_string(i),
                            std::string(static_cast<size_t>(i * 37), 'a' + i % 26));
  }
  testing::WriteFileBytes(src + "/empty", "");
  testing::WriteFileBytes(src + "/ünïcode 名前 with\nnewline", "unusual");
  testing::WriteFileBytes(src + "/.kmsd-looks-reserved", "fine in a backup");
  fs::create_directories(src + "/empty-dir");
  fs::create_symlink("d1/f1", src + "/link");
  ::chmod((src + "/d3").c_str(), 0750);
  ::chmod((src + "/empty").c_str(), 0400);
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0600), 0);
  const timespec old_time[2] = {{1'600'000'000, 123456789}, {1'600'000'000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src + "/d2").c_str(), old_time, 0), 0);
  WriteSummary summary;
  ASSERT_TRUE(Create(dir_ / "b", {{src, "src"}}, "2026-12-01T00:00:00Z", &summary).ok());
  EXPECT_EQ(summary.files, 303u);
  EXPECT_EQ(summary.symlinks, 1u);
  ASSERT_EQ(summary.skipped.size(), 1u);
  EXPECT_THAT(summary.skipped[0], HasSubstr("src/fifo"));
  auto verified = Verify(dir_ / "b");
  ASSERT_TRUE(verified.has_value()) << verified.error().ToString();
  EXPECT_EQ(verified->tenant, "acme");
  auto restored = Restore(dir_ / "b", dir_ / "out");
  ASSERT_TRUE(restored.has_value()) << restored.error().ToString();
  EXPECT_EQ(restored->files, 303u);
  ::unlink((src + "/fifo").c_str());
  for (const auto& item : fs::recursive_directory_iterator(src)) {
    const std::string relative = item.path().lexically_relative(src).string();
    const std::string copy = dir_ / ("out/src/" + relative);
    struct stat a {
    }, b{};
    ASSERT_EQ(::lstat(item.path().c_str(), &a), 0);
    ASSERT_EQ(::lstat(copy.c_str(), &b), 0) << relative;
    EXPECT_EQ(a.st_mode, b.st_mode) << relative;
    if (!S_ISDIR(a.st_mode) || relative == "d2") {
      EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << relative;
      EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec) << relative;
    }
    if (S_ISREG(a.st_mode)) {
      EXPECT_EQ(testing::ReadFileBytes(item.path()), testing::ReadFileBytes(copy)) << relative;
    }
    if (S_ISLNK(a.st_mode)) {
      EXPECT_EQ(fs::read_symlink(item.path()), fs::read_symlink(copy));
    }
  }
  // A second restore into the same place is refused: it is not empty.
  EXPECT_EQ(Restore(dir_ / "b", dir_ / "out").error().code(), Code::kAlreadyExists);
}

TEST_F(BackupTest, EveryDamagedFrameOrTruncationIsRefusedAndWritesNothing) {
  testing::WriteFileBytes(dir_ / "src/a", std::string(600000, 'x'));
  ASSERT_TRUE(Create(dir_ / "b", {{dir_ / "src", "src"}}).ok());
  const std::string bytes = testing::ReadFileBytes(dir_ / "b");
  for (size_t at : {bytes.size() / 3, bytes.size() / 2, bytes.size() - 20}) {
    std::string damaged = bytes;
    damaged[at] ^= 0x10;
    testing::WriteFileBytes(dir_ / "damaged", damaged);
    ExpectRefused(dir_ / "damaged", "does not authenticate");
  }
  testing::WriteFileBytes(dir_ / "short", bytes.substr(0, bytes.size() - 100));
  ExpectRefused(dir_ / "short", "truncated");
  testing::WriteFileBytes(dir_ / "long", bytes + "more");
  ExpectRefused(dir_ / "long", "after the end of the message");
  std::string other_id = bytes;
  other_id[10] ^= 0x01;  // in the header's message id
  testing::WriteFileBytes(dir_ / "other-id", other_id);
  ExpectRefused(dir_ / "other-id", "commitment");
  // Frames 1 and 2 swapped: each is whole and authentic on its own.
  auto parsed = esdk::ParseHeader(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), {});
  ASSERT_TRUE(parsed.has_value() && parsed->has_value());
  const size_t frame = 4 + esdk::kIvBytes + kBackupFrameLength + esdk::kTagBytes;
  const size_t first = (*parsed)->size;
  ASSERT_GT(bytes.size(), first + 2 * frame);
  const std::string swapped = bytes.substr(0, first) + bytes.substr(first + frame, frame) +
                              bytes.substr(first, frame) + bytes.substr(first + 2 * frame);
  testing::WriteFileBytes(dir_ / "swapped", swapped);
  ExpectRefused(dir_ / "swapped", "frame 2 where frame 1");
}

TEST_F(BackupTest, CraftedArchivesThatEscapeOrLieAreRefused) {
  ExpectRefused(Craft({{.path = "../escaped", .data = "x"}}), "'.' or '..' component");
  ExpectRefused(Craft({{.path = "/tmp/kmsd-escaped", .data = "x"}}), "absolute");
  ExpectRefused(Craft({{.path = "l", .type = AE_IFLNK, .target = "../../etc"}}),
                "points out of the tree");
  ExpectRefused(Craft({{.path = "l", .type = AE_IFLNK, .target = "/etc"}}), "absolute");
  ExpectRefused(Craft({{.path = "d", .type = AE_IFDIR},
                       {.path = "d/l", .type = AE_IFLNK, .target = ".."},
                       {.path = "d/l/x", .data = "through the link"}}),
                "which is not a directory");
  ExpectRefused(Craft({{.path = "f", .data = "a"}, {.path = "f/x", .data = "b"}}),
                "which is not a directory");
  ExpectRefused(Craft({{.path = "h", .target = "/etc/passwd"}}), "hard link");
  ExpectRefused(Craft({{.path = "dev", .type = AE_IFCHR}}), "not a file, directory");
  ExpectRefused(Craft({{.path = "twice", .data = "a"}, {.path = "twice", .data = "b"}}), "twice");
  ExpectRefused(Craft({{.path = "f", .data = "a"}}, /*manifest=*/false), "without its manifest");
  ExpectRefused(Craft({{.path = "f", .data = "a"}}, true, {{.path = "late", .data = "b"}}),
                "after the manifest");
  ExpectRefused(Craft({{.path = "f", .data = "real", .digest_of = "other"}}),
                "entry 'f': its size or SHA-256 is not the manifest's");
  ExpectRefused(Craft({{.path = "unlisted", .data = "a", .listed = false}}),
                "entry 'unlisted': it is not in the manifest");
  // Links through links: each lexically inside, together out of the tree.
  ExpectRefused(Craft({{.path = "d", .type = AE_IFDIR},
                       {.path = "d/t", .type = AE_IFLNK, .target = "."},
                       {.path = "d/s", .type = AE_IFLNK, .target = "t/t/t/../../../../etc"}}),
                "'..' after another component");
  ExpectRefused(Craft({{.path = "a/b", .data = "x"}, {.path = "a", .data = "y"}}),
                "it must be a directory");
  ExpectRefused(Craft({{.path = "sparse", .data = "tail", .hole = int64_t{1} << 40}}),
                "sparse entry");
  ExpectRefused(
      Craft({{.path = "kept", .data = "a"}, {.path = "gone", .data = "b", .archived = false}}),
      "entry 'gone': the manifest lists it; the archive does not hold it");
}

TEST(FileWritersTest, WritesEachFileInOrderWithHolesAndReportsAFailure) {
  testing::TempDir dir;
  {
    FileWriters writers(3);
    for (int i = 0; i < 9; ++i) {
      const std::string path = dir / ("f" + std::to_string(i));
      ASSERT_TRUE(writers.Open(store::Fd(::open(path.c_str(), O_CREAT | O_WRONLY, 0600))).ok());
      const std::string head = "file " + std::to_string(i);
      ASSERT_TRUE(writers.Write({reinterpret_cast<const uint8_t*>(head.data()), head.size()}).ok());
      const std::vector<uint8_t> zeros(1 << 20, 0);
      ASSERT_TRUE(writers.Write(zeros).ok());
      ASSERT_TRUE(
          writers.Close(0640, 1'600'000'000'000'000'000, head.size() + zeros.size(), path).ok());
    }
    ASSERT_TRUE(writers.Finish().ok());
  }
  for (int i = 0; i < 9; ++i) {
    const std::string path = dir / ("f" + std::to_string(i));
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(static_cast<size_t>(info.st_size), std::string("file 0").size() + (1 << 20));
    EXPECT_LT(info.st_blocks * 512, 1 << 20) << "the zeros are not a hole";
    EXPECT_EQ(info.st_mode & 0777, 0640u);
    EXPECT_EQ(info.st_mtim.tv_sec, 1'600'000'000);
    EXPECT_EQ(testing::ReadFileBytes(path).substr(0, 6), "file " + std::to_string(i));
  }
  // A file that cannot be written: the failure comes back, and stays.
  FileWriters writers(2);
  const std::string path = dir / "f0";
  ASSERT_TRUE(writers.Open(store::Fd(::open(path.c_str(), O_RDONLY))).ok());
  const std::string data = "x";
  (void)writers.Write({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
  const Status finished = writers.Finish();
  EXPECT_EQ(finished.code(), Code::kInternal);
  EXPECT_EQ(writers.Write({reinterpret_cast<const uint8_t*>(data.data()), 1}).code(),
            Code::kInternal);
}

TEST(ManifestTest, StrictParsingRefusesForgedShapes) {
  const std::string good =
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[)"
      R"({"path":"a","type":"file","mode":420,"mtime_ns":1,"size":1,"sha256":")" +
      std::string(64, '0') + R"("}]})";
  ASSERT_TRUE(ParseManifest(good).has_value()) << ParseManifest(good).error().ToString();
  const std::vector<std::string> bad = {
      "",
      "[]",
      "{}",
      R"({"format":"other","tenant":"t","created":"c","entries":[]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[],"extra":1})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"../a","type":"dir","mode":1,"mtime_ns":1}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"fifo","mode":1,"mtime_ns":1}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"dir","mode":99999,"mtime_ns":1}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"file","mode":1,"mtime_ns":1,"size":1,"sha256":"zz"}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"symlink","mode":1,"mtime_ns":1,"target":"../../x"}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"dir","mode":1,"mtime_ns":1},{"path":"a","type":"dir","mode":1,"mtime_ns":1}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"dir","mode":1,"mtime_ns":1,"size":3}]})",
      R"({"format":"kmsd-backup-1","tenant":"t","created":"c","entries":[{"path":"a","type":"dir","mode":"1","mtime_ns":1}]})",
  };
  for (const std::string& text : bad) {
    auto parsed = ParseManifest(text);
    ASSERT_FALSE(parsed.has_value()) << text;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidCiphertext) << text;
  }
}

TEST(ManifestTest, LinkTargetsMustStayInTheTree) {
  EXPECT_TRUE(CheckLinkTarget("a/b/l", "../c").ok());
  EXPECT_TRUE(CheckLinkTarget("a/b/l", "../../c").ok());
  EXPECT_TRUE(CheckLinkTarget("l", "./x/./y").ok());
  EXPECT_FALSE(CheckLinkTarget("a/b/l", "../../../c").ok());
  EXPECT_FALSE(CheckLinkTarget("l", "..").ok());
  EXPECT_FALSE(CheckLinkTarget("l", "x/../../y").ok());
  EXPECT_FALSE(CheckLinkTarget("l", "/etc/passwd").ok());
  EXPECT_FALSE(CheckLinkTarget("l", "").ok());
  // '..' only leads: after a component that may itself be a link, it could
  // climb anywhere.
  EXPECT_FALSE(CheckLinkTarget("a/b/l", "x/../y").ok());
  EXPECT_FALSE(CheckLinkTarget("d/s", "t/t/t/../../../../etc/passwd").ok());
  EXPECT_TRUE(CheckLinkTarget("a/b/l", "../x/y").ok());
}

TEST_F(BackupTest, LinksOutOfTheTreeAreNotStoredAndTimesBefore1970Restore) {
  const std::string src = dir_ / "src";
  testing::WriteFileBytes(src + "/old", "from 1969");
  const timespec before_1970[2] = {{-2, 500'000'000}, {-2, 500'000'000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src + "/old").c_str(), before_1970, 0), 0);
  fs::create_symlink("/etc/passwd", src + "/absolute");
  fs::create_symlink("../../outside", src + "/up");
  fs::create_symlink("old", src + "/fine");
  WriteSummary summary;
  ASSERT_TRUE(Create(dir_ / "b", {{src, "src"}}, "2026-12-01T00:00:00Z", &summary).ok());
  EXPECT_EQ(summary.symlinks, 1u);
  ASSERT_EQ(summary.skipped.size(), 2u);
  EXPECT_THAT(summary.skipped[0], HasSubstr("not restorable"));
  auto restored = Restore(dir_ / "b", dir_ / "out/");  // a trailing '/' is the same place
  ASSERT_TRUE(restored.has_value()) << restored.error().ToString();
  struct stat info {};
  ASSERT_EQ(::stat((dir_ / "out/src/old").c_str(), &info), 0);
  EXPECT_EQ(info.st_mtim.tv_sec, -2);
  EXPECT_EQ(info.st_mtim.tv_nsec, 500'000'000);
  EXPECT_TRUE(fs::is_symlink(dir_ / "out/src/fine"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ / "out/src/up")));
}

TEST(RetentionTest, KeepsEachTenantsNewestAndRecentOnes) {
  const int64_t day = 86400, now = 100 * day;
  std::vector<BackupFile> backups;
  for (int i = 0; i < 6; ++i) backups.push_back({"a" + std::to_string(i), "acme", now - i * day});
  backups.push_back({"g0", "globex", now - 50 * day});
  const auto names = [&](const std::vector<size_t>& removed) {
    std::vector<std::string> out;
    for (size_t i : removed) out.push_back(backups[i].path);
    return out;
  };
  EXPECT_EQ(names(SelectForRemoval(backups, {.keep_last = 2, .keep_within_seconds = {}}, now)),
            (std::vector<std::string>{"a2", "a3", "a4", "a5"}));
  EXPECT_EQ(
      names(SelectForRemoval(backups, {.keep_last = {}, .keep_within_seconds = 3 * day}, now)),
      (std::vector<std::string>{"a4", "a5", "g0"}));
  EXPECT_EQ(names(SelectForRemoval(backups, {.keep_last = 1, .keep_within_seconds = 2 * day}, now)),
            (std::vector<std::string>{"a3", "a4", "a5"}));
  EXPECT_TRUE(SelectForRemoval(backups, {}, now).empty());
}

TEST(Rfc3339Test, RoundTrips) {
  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(ParseRfc3339("2026-12-03T18:40:00Z"), 1796323200);
  EXPECT_EQ(Rfc3339(1796323200), "2026-12-03T18:40:00Z");
  EXPECT_EQ(ParseRfc3339("2026-12-03 18:40:00"), std::nullopt);
  EXPECT_EQ(ParseRfc3339("2026-12-03T18:40:00Zjunk"), std::nullopt);
}

}  // namespace
}  // namespace kmsd::backup
