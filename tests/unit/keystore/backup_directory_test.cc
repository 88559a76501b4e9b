// BackupDirectory, CheckBackupFileName and CreateFileNoFollow: which names a
// keystore.backup request may give, which directories kmsd accepts, and
// that a backup file is never written through a symlink.
#include "keystore/backup_directory.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

// The directory entries of `dir`, sorted.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CheckBackupFileNameTest, AcceptsPlainNames) {
  const std::vector<std::string> names = {"b.db",
                                          "keystore-2026-11-24.db",
                                          ".hidden",
                                          "...",
                                          "a b",
                                          "\xc3\xa9.db",
                                          std::string(kMaxBackupFileNameBytes, 'x')};
  for (const std::string& name : names) {
    EXPECT_TRUE(CheckBackupFileName(name).ok()) << name;
  }
}

TEST(CheckBackupFileNameTest, RefusesEverythingButOneComponent) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {".", "'.' and '..' are not file names"},
      {"..", "'.' and '..' are not file names"},
      {"a/b", "no '/'"},
      {"../x", "no '/'"},
      {"/x", "no '/'"},
      {"x/", "no '/'"},
      {std::string("a\0b", 3), "NUL or control byte"},
      {"a\nb", "NUL or control byte"},
      {"tab\t", "NUL or control byte"},
      {"del\x7f", "NUL or control byte"},
      {std::string(kMaxBackupFileNameBytes + 1, 'x'), "over 255 bytes"},
  };
  for (const auto& [name, why] : cases) {
    Status status = CheckBackupFileName(name);
    EXPECT_EQ(status.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr(why)) << name;
  }
}

class BackupDirectoryTest : public ::testing::Test {
 protected:
  std::string Dir() const { return dir_ / "backups"; }

  BackupDirectory Prepared() {
    Result<BackupDirectory> backups = BackupDirectory::Prepare(Dir());
    EXPECT_TRUE(backups.has_value()) << backups.error();
    return *backups;
  }

  void ExpectPrepareFails(const std::string& path, const std::string& substring) {
    Result<BackupDirectory> backups = BackupDirectory::Prepare(path);
    ASSERT_FALSE(backups.has_value()) << path;
    EXPECT_EQ(backups.error().code(), Code::kInvalidArgument);
    EXPECT_THAT(backups.error().message(), HasSubstr(substring));
  }

  TempDir dir_;
};

TEST_F(BackupDirectoryTest, PrepareCreatesAMissingDirectoryOwnerOnly) {
  BackupDirectory backups = Prepared();
  struct stat st;
  ASSERT_EQ(lstat(Dir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(backups.configured_path(), Dir());
  EXPECT_EQ(backups.path(), std::filesystem::canonical(Dir()).string());
  // Again, now that it exists.
  EXPECT_TRUE(BackupDirectory::Prepare(Dir()).has_value());
}

TEST_F(BackupDirectoryTest, PrepareResolvesSymlinksAboveTheDirectoryOnce) {
  std::filesystem::create_directory(dir_ / "real");
  std::filesystem::create_directory_symlink(dir_ / "real", dir_ / "link");
  Result<BackupDirectory> backups = BackupDirectory::Prepare(dir_ / "link/backups");
  ASSERT_TRUE(backups.has_value()) << backups.error();
  EXPECT_EQ(backups->path(), std::filesystem::canonical(dir_ / "real/backups").string());
  EXPECT_EQ(backups->configured_path(), dir_ / "link/backups");
}

TEST_F(BackupDirectoryTest, PrepareRefusesASymlinkedDirectory) {
  std::filesystem::create_directory(dir_ / "elsewhere");
  std::filesystem::create_directory_symlink(dir_ / "elsewhere", Dir());
  ExpectPrepareFails(Dir(), "is a symlink; it must be a real directory");
  // A dangling one is not followed to create its target either.
  std::filesystem::remove(Dir());
  std::filesystem::create_directory_symlink(dir_ / "missing", Dir());
  ExpectPrepareFails(Dir(), "is a symlink");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing"));
}

TEST_F(BackupDirectoryTest, PrepareRefusesAFile) {
  std::ofstream(Dir()) << "not a directory";
  ExpectPrepareFails(Dir(), "is not a directory");
}

TEST_F(BackupDirectoryTest, PrepareRefusesADirectoryOthersMayWrite) {
  std::filesystem::create_directory(Dir());
  for (mode_t mode : {0770, 0702, 0777}) {
    ASSERT_EQ(chmod(Dir().c_str(), mode), 0);
    ExpectPrepareFails(Dir(), "is writable by group or others; chmod 0700 it");
  }
  ASSERT_EQ(chmod(Dir().c_str(), 0750), 0);  // readable is fine
  EXPECT_TRUE(BackupDirectory::Prepare(Dir()).has_value());
}

TEST_F(BackupDirectoryTest, PrepareRefusesADirectoryOfAnotherUid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::filesystem::create_directory(Dir());
  ASSERT_EQ(chown(Dir().c_str(), 12345, 12345), 0);
  ExpectPrepareFails(Dir(), "is owned by uid 12345, not by kmsd's uid 0");
}

TEST_F(BackupDirectoryTest, PrepareRefusesBadPaths) {
  ExpectPrepareFails("backups", "must be an absolute path");
  ExpectPrepareFails("/", "must be an absolute path");
  ExpectPrepareFails(dir_ / "x/../backups", "without '.' or '..' components");
  ExpectPrepareFails(dir_ / "./backups", "without '.' or '..' components");
  ExpectPrepareFails(dir_ / "missing/backups", "its parent");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing"));
}

TEST_F(BackupDirectoryTest, ResolveAcceptsANameOrAnAbsolutePathDirectlyInside) {
  BackupDirectory backups = Prepared();
  const std::string expected = backups.path() + "/b.db";
  for (const std::string& requested :
       {std::string("b.db"), Dir() + "/b.db", backups.path() + "/b.db", Dir() + "//b.db",
        "/" + Dir() + "/b.db"}) {
    Result<std::string> path = backups.Resolve(requested);
    ASSERT_TRUE(path.has_value()) << requested << ": " << path.error();
    EXPECT_EQ(*path, expected) << requested;
  }
}

TEST_F(BackupDirectoryTest, ResolveRefusesEverythingElseNamingTheDirectory) {
  BackupDirectory backups = Prepared();
  const std::pair<std::string, std::string> cases[] = {
      {"../x", "no '/'"},
      {"a/b", "no '/'"},
      {"/tmp/x", "in another directory"},
      {"/", "in another directory"},
      {dir_ / "x", "in another directory"},
      {Dir() + "/sub/x", "in another directory"},
      {Dir() + "/../backups/x", "'.' or '..' component"},
      {Dir() + "/./x", "'.' or '..' component"},
      {Dir() + "/..", "'.' and '..' are not file names"},
      {Dir() + "/", "empty"},
      {Dir(), "in another directory"},
      {".", "'.' and '..' are not file names"},
      {"..", "'.' and '..' are not file names"},
      {"", "empty"},
      {std::string("a\0b", 3), "NUL or control byte"},
      {"a\nb", "NUL or control byte"},
      {Dir() + "/a\nb", "NUL or control byte"},
  };
  for (const auto& [requested, why] : cases) {
    Result<std::string> path = backups.Resolve(requested);
    ASSERT_FALSE(path.has_value()) << requested << " -> " << *path;
    EXPECT_EQ(path.error().code(), Code::kInvalidArgument);
    EXPECT_THAT(path.error().message(), HasSubstr("in the backup directory " + backups.path()));
    EXPECT_THAT(path.error().message(), HasSubstr(why)) << requested;
  }
}

class CreateFileNoFollowTest : public ::testing::Test {
 protected:
  // A source file holding `content`, open for reading.
  int Source(const std::string& content) {
    const std::string path = dir_ / "source";
    std::ofstream(path, std::ios::trunc) << content;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return fd;
  }

  Result<uint64_t> Create(const std::string& path, const std::string& content = "copy") {
    int fd = Source(content);
    Result<uint64_t> result = CreateFileNoFollow(fd, path);
    close(fd);
    return result;
  }

  TempDir dir_;
};

TEST_F(CreateFileNoFollowTest, CreatesAnOwnerOnlyFileAndNothingElse) {
  std::filesystem::create_directory(dir_ / "out");
  Result<uint64_t> bytes = Create(dir_ / "out/b.db", "the copy");
  ASSERT_TRUE(bytes.has_value()) << bytes.error();
  EXPECT_EQ(*bytes, 8u);
  EXPECT_EQ(testing::ReadFileBytes(dir_ / "out/b.db"), "the copy");
  struct stat st;
  ASSERT_EQ(lstat((dir_ / "out/b.db").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Names(dir_ / "out"), std::vector<std::string>{"b.db"});
}

TEST_F(CreateFileNoFollowTest, ExistingNameIsAlreadyExistsAndKept) {
  std::filesystem::create_directory(dir_ / "out");
  std::ofstream(dir_ / "out/b.db") << "precious";
  Result<uint64_t> bytes = Create(dir_ / "out/b.db");
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().code(), Code::kAlreadyExists);
  EXPECT_EQ(testing::ReadFileBytes(dir_ / "out/b.db"), "precious");
  EXPECT_EQ(Names(dir_ / "out"), std::vector<std::string>{"b.db"});
}

TEST_F(CreateFileNoFollowTest, SymlinkAtTheNameIsAlreadyExistsAndItsTargetUntouched) {
  std::filesystem::create_directory(dir_ / "out");
  std::filesystem::create_symlink(dir_ / "target", dir_ / "out/b.db");
  Result<uint64_t> bytes = Create(dir_ / "out/b.db");
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().code(), Code::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "target"));
  EXPECT_TRUE(std::filesystem::is_symlink(dir_ / "out/b.db"));
  EXPECT_EQ(CheckCanCreateNoFollow(dir_ / "out/b.db").code(), Code::kAlreadyExists);
}

TEST_F(CreateFileNoFollowTest, SymlinkAnywhereInTheDirectoryIsInvalidArgument) {
  std::filesystem::create_directories(dir_ / "real/out");
  std::filesystem::create_directory_symlink(dir_ / "real", dir_ / "link");
  std::filesystem::create_directory_symlink(dir_ / "real/out", dir_ / "out");
  for (const std::string& path : {dir_ / "link/out/b.db", dir_ / "out/b.db"}) {
    Result<uint64_t> bytes = Create(path);
    ASSERT_FALSE(bytes.has_value()) << path;
    EXPECT_EQ(bytes.error().code(), Code::kInvalidArgument);
    EXPECT_THAT(bytes.error().message(), HasSubstr("is a symlink"));
    EXPECT_EQ(CheckCanCreateNoFollow(path).code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(Names(dir_ / "real/out").empty());
}

TEST_F(CreateFileNoFollowTest, BadPathsAreInvalidArgument) {
  for (const std::string& path : {std::string("b.db"), dir_ / "x/../b.db", dir_ / "./b.db",
                                  dir_.path().string() + "//b.db", dir_ / "b.db/", dir_ / ".."}) {
    Result<uint64_t> bytes = Create(path);
    ASSERT_FALSE(bytes.has_value()) << path;
    EXPECT_EQ(bytes.error().code(), Code::kInvalidArgument) << path;
  }
}

TEST_F(CreateFileNoFollowTest, MissingDirectoryIsInternal) {
  Result<uint64_t> bytes = Create(dir_ / "missing/b.db");
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().code(), Code::kInternal);
}

}  // namespace
}  // namespace kmsd::testing
