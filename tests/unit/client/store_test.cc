// The per-tenant store without kmsd: a raw AES keyring stands in for kmsd's.
// Every case runs on both resolvers (openat2 and the openat walk).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "client/esdk/raw_aes_keyring.h"
#include "client/store/tenant_store.h"
#include "client/store/tree.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_helpers.h"

namespace kmsd::store {
namespace {

namespace fs = std::filesystem;
using esdk::Bytes;
using ::testing::HasSubstr;

// A Reader over `bytes`, in pieces of at most `piece`.
Reader ReaderOf(const Bytes& bytes, size_t piece = 1000) {
  auto offset = std::make_shared<size_t>(0);
  return [&bytes, offset, piece](std::span<uint8_t> buffer) -> Result<size_t> {
    const size_t n = std::min({buffer.size(), bytes.size() - *offset, piece});
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(*offset), n, buffer.begin());
    *offset += n;
    return n;
  };
}

class StoreTest : public ::testing::TestWithParam<Resolver> {
 protected:
  void SetUp() override {
    if (GetParam() == Resolver::kOpenat2 && !Beneath::KernelHasOpenat2()) {
      GTEST_SKIP() << "this kernel has no openat2";
    }
    fs::create_directory(root_);
  }

  TenantStore Open(const std::string& tenant = "acme") {
    auto store = TenantStore::Open(root_, tenant, true, GetParam());
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return std::move(*store);
  }

  Result<PutResult> Put(const TenantStore& store, std::string_view name, const Bytes& content,
                        const Quota& quota = {}, bool size_known = true) {
    return store.Put(materials_, name, ReaderOf(content),
                     size_known ? std::optional<uint64_t>(content.size()) : std::nullopt, quota,
                     64);
  }

  Result<Bytes> Get(const TenantStore& store, std::string_view name) {
    Bytes out;
    auto got = store.Get(materials_, name, [&](std::span<const uint8_t> bytes) {
      out.insert(out.end(), bytes.begin(), bytes.end());
      return OkStatus();
    });
    if (!got.has_value()) return Error(got.error());
    EXPECT_EQ(*got, out.size());
    return out;
  }

  testing::TempDir dir_;
  std::string root_ = dir_ / "store";
  std::unique_ptr<esdk::RawAesKeyring> keyring_ = std::move(
      *esdk::RawAesKeyring::Create("escrow", "k1", SecretBuffer::CopyOf(Bytes(32, 0x42))));
  esdk::KeyringMaterials materials_{*keyring_};
};

TEST(StoreNameTest, RefusesNamesThatCouldLeaveTheStoreOrAreNotText) {
  for (std::string_view good :
       {"a", "a/b/c.txt", "with space", "ünïcode/名前", "-leading-dash", "line\nbreak", ".hidden",
        "..dots", "a/...", "x.kmsd-not-reserved"}) {
    EXPECT_TRUE(CheckName(good).ok()) << good << ": " << CheckName(good).message();
  }
  const std::string too_long(kMaxNameBytes + 1, 'a');
  const std::string long_component(kMaxComponentBytes + 1, 'a');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "is empty"},
      {"/etc/passwd", "is absolute"},
      {"../x", "'.' or '..' component"},
      {"a/../../x", "'.' or '..' component"},
      {"a/./b", "'.' or '..' component"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {std::string("a\0b", 3), "NUL byte"},
      {"\xff\xfe", "not UTF-8"},
      {too_long, "at most 1024 bytes"},
      {"a/" + long_component, "over 255 bytes"},
      {".kmsd-lock", "the store's own files"},
      {"d/.kmsd-tmp-0-1-n", "the store's own files"},
  };
  for (const auto& [name, why] : bad) {
    const Status status = CheckName(name);
    EXPECT_EQ(status.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr(why)) << name;
  }
}

TEST_P(StoreTest, StoresAndReadsFilesOfEverySizeAroundTheFrame) {
  TenantStore store = Open();
  for (size_t size : {0, 1, 63, 64, 65, 1000, 200000}) {
    const std::string name = "dir/sub/file-" + std::to_string(size);
    const Bytes content = PatternBytes(size, static_cast<uint8_t>(size));
    auto put = Put(store, name, content);
    ASSERT_TRUE(put.has_value()) << put.error().ToString();
    EXPECT_EQ(put->bytes, size);
    EXPECT_FALSE(put->replaced);
    EXPECT_EQ(fs::file_size(root_ + "/acme/" + name), put->stored_bytes);
    EXPECT_EQ(Get(store, name), content);
  }
  // The stored bytes are a message, not the plaintext.
  EXPECT_EQ(
      testing::ReadFileBytes(root_ + "/acme/dir/sub/file-1000")
          .find(std::string(reinterpret_cast<const char*>(PatternBytes(1000, 232).data()), 64)),
      std::string::npos);
  auto listed = store.List();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 7u);
  EXPECT_EQ((*listed)[0].name, "dir/sub/file-0");
  EXPECT_EQ((*listed)[1].bytes, 1u);
  EXPECT_EQ((*listed)[2].name, "dir/sub/file-1000");
  EXPECT_EQ((*listed)[2].bytes, 1000u);
  auto usage = store.Measure();
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->files, 7u);
  EXPECT_EQ(usage->bytes, 0u + 1 + 63 + 64 + 65 + 1000 + 200000);
  // Directories are 0700 and files 0600: the store is the tenant's alone.
  EXPECT_EQ(fs::status(root_ + "/acme").permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(fs::status(root_ + "/acme/dir/sub/file-1").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST_P(StoreTest, AReplacedFileIsWhollyTheNewOne) {
  TenantStore store = Open();
  ASSERT_TRUE(Put(store, "f", PatternBytes(5000, 1)).has_value());
  auto replaced = Put(store, "f", PatternBytes(300, 2));
  ASSERT_TRUE(replaced.has_value());
  EXPECT_TRUE(replaced->replaced);
  EXPECT_EQ(Get(store, "f"), PatternBytes(300, 2));
  EXPECT_EQ(store.List()->size(), 1u);
}

TEST_P(StoreTest, AFileMovedToAnotherNameOrTenantDoesNotDecrypt) {
  TenantStore acme = Open("acme");
  TenantStore globex = Open("globex");
  ASSERT_TRUE(Put(acme, "invoices/1", PatternBytes(500)).has_value());
  fs::copy_file(root_ + "/acme/invoices/1", root_ + "/acme/moved");
  auto moved = Get(acme, "moved");
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error().code(), Code::kInvalidCiphertext);
  EXPECT_THAT(moved.error().message(), HasSubstr("kmsd-store-name"));
  fs::create_directories(root_ + "/globex/invoices");
  fs::copy_file(root_ + "/acme/invoices/1", root_ + "/globex/invoices/1");
  auto foreign = Get(globex, "invoices/1");
  ASSERT_FALSE(foreign.has_value());
  EXPECT_EQ(foreign.error().code(), Code::kInvalidCiphertext);
  EXPECT_THAT(foreign.error().message(), HasSubstr("kmsd-store-tenant"));
}

TEST_P(StoreTest, ATamperedOrTruncatedFileFails) {
  TenantStore store = Open();
  ASSERT_TRUE(Put(store, "f", PatternBytes(1000)).has_value());
  const std::string path = root_ + "/acme/f";
  std::string bytes = testing::ReadFileBytes(path);
  for (size_t at : {size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    std::string tampered = bytes;
    tampered[at] ^= 1;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << tampered;
    EXPECT_EQ(Get(store, "f").error().code(), Code::kInvalidCiphertext) << at;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 20);
  EXPECT_EQ(Get(store, "f").error().code(), Code::kInvalidCiphertext);
}

TEST_P(StoreTest, SymbolicLinksAnywhereOnThePathAreRefused) {
  TenantStore store = Open();
  const std::string outside = dir_ / "outside";
  fs::create_directory(outside);
  std::ofstream(outside + "/secret") << "not the store's";
  fs::create_directory_symlink(outside, root_ + "/acme/escape");
  fs::create_symlink(outside + "/secret", root_ + "/acme/link");
  for (std::string_view name : {"escape/new", "escape/secret", "link"}) {
    auto put = Put(store, name, PatternBytes(10));
    ASSERT_FALSE(put.has_value()) << name;
    EXPECT_EQ(put.error().code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(put.error().message(), HasSubstr("symbolic link")) << name;
  }
  for (std::string_view name : {"escape/secret", "link"}) {
    auto got = Get(store, name);
    ASSERT_FALSE(got.has_value()) << name;
    EXPECT_EQ(got.error().code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(got.error().message(), HasSubstr("symbolic link")) << name;
  }
  EXPECT_EQ(store.Delete("escape/secret").code(), Code::kInvalidArgument);
  EXPECT_EQ(store.Delete("link").code(), Code::kInvalidArgument);
  // Nothing was written, read or removed outside; the links are not listed.
  EXPECT_EQ(testing::ReadFileBytes(outside + "/secret"), "not the store's");
  EXPECT_EQ(std::distance(fs::directory_iterator(outside), fs::directory_iterator()), 1);
  EXPECT_TRUE(fs::is_symlink(root_ + "/acme/link"));
  EXPECT_TRUE(store.List()->empty());
  // A tenant directory that is a link is not followed either.
  fs::create_directory_symlink(outside, root_ + "/evil");
  auto evil = TenantStore::Open(root_, "evil", true, GetParam());
  ASSERT_FALSE(evil.has_value());
  EXPECT_EQ(evil.error().code(), Code::kInvalidArgument);
}

TEST_P(StoreTest, MissingFilesDirectoriesAndFifosHaveTheirErrors) {
  TenantStore store = Open();
  EXPECT_EQ(Get(store, "nope").error().code(), Code::kNotFound);
  EXPECT_EQ(Get(store, "no/such/dir").error().code(), Code::kNotFound);
  EXPECT_EQ(store.Delete("nope").code(), Code::kNotFound);
  ASSERT_TRUE(Put(store, "d/f", PatternBytes(3)).has_value());
  EXPECT_THAT(Get(store, "d").error().message(), HasSubstr("not a regular file"));
  auto over_directory = Put(store, "d", PatternBytes(3));
  ASSERT_FALSE(over_directory.has_value());
  EXPECT_THAT(over_directory.error().message(), HasSubstr("is a directory"));
  auto under_file = Put(store, "d/f/g", PatternBytes(3));
  ASSERT_FALSE(under_file.has_value());
  EXPECT_EQ(under_file.error().code(), Code::kInvalidArgument);
  ASSERT_EQ(::mkfifo((root_ + "/acme/fifo").c_str(), 0600), 0);
  auto fifo = Get(store, "fifo");  // must not block
  ASSERT_FALSE(fifo.has_value());
  EXPECT_THAT(fifo.error().message(), HasSubstr("not a regular file"));
  EXPECT_TRUE(store.Delete("d/f").ok());
  EXPECT_EQ(Get(store, "d/f").error().code(), Code::kNotFound);
  EXPECT_EQ(TenantStore::Open(root_, "nobody", false, GetParam()).error().code(), Code::kNotFound);
}

TEST_P(StoreTest, QuotasAreCheckedBeforeAnythingIsWritten) {
  TenantStore store = Open();
  const Quota quota{.max_file_size = 1000, .max_file_count = 3, .max_data_size = 2500};
  auto big = Put(store, "big", PatternBytes(1001), quota);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(big.error().message(), HasSubstr("max_file_size is 1000"));
  ASSERT_TRUE(Put(store, "a", PatternBytes(1000), quota).has_value());
  ASSERT_TRUE(Put(store, "b", PatternBytes(1000), quota).has_value());
  auto over_data = Put(store, "c", PatternBytes(501), quota);
  ASSERT_FALSE(over_data.has_value());
  EXPECT_EQ(over_data.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(over_data.error().message(), HasSubstr("max_data_size is 2500"));
  ASSERT_TRUE(Put(store, "c", PatternBytes(500), quota).has_value());
  auto over_count = Put(store, "d/e", PatternBytes(0), quota);
  ASSERT_FALSE(over_count.has_value());
  EXPECT_EQ(over_count.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(over_count.error().message(), HasSubstr("max_file_count is 3"));
  EXPECT_FALSE(fs::exists(root_ + "/acme/d"));  // not even its directory
  // Replacing a file frees its bytes and is not another file.
  ASSERT_TRUE(Put(store, "a", PatternBytes(900), quota).has_value());
  ASSERT_TRUE(Put(store, "c", PatternBytes(600), quota).has_value());
  EXPECT_EQ(Get(store, "c"), PatternBytes(600));
  // A stream of unknown size stops at what the quotas leave and leaves nothing.
  ASSERT_TRUE(store.Delete("c").ok());
  auto stream = Put(store, "s", PatternBytes(700), quota, /*size_known=*/false);
  ASSERT_FALSE(stream.has_value());
  EXPECT_EQ(stream.error().code(), Code::kQuotaExceeded);
  auto usage = store.Measure();
  EXPECT_EQ(usage->files, 2u);
  EXPECT_EQ(usage->bytes, 1900u);
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ + "/acme"), fs::directory_iterator()),
            3);  // a, b and the lock
  ASSERT_TRUE(Put(store, "s", PatternBytes(600), quota, /*size_known=*/false).has_value());
  EXPECT_EQ(Get(store, "s"), PatternBytes(600));
}

TEST_P(StoreTest, WritersRacingAtTheLimitCannotPassItTogether) {
  const Quota quota{.max_file_size = std::nullopt, .max_file_count = 5, .max_data_size = 40000};
  TenantStore store = Open();
  ASSERT_TRUE(Put(store, "first", PatternBytes(1000), quota).has_value());
  std::atomic<int> stored{0}, refused{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < 12; ++i) {
    writers.emplace_back([&, i] {
      // Each thread its own store object, as separate processes would have.
      TenantStore own = Open();
      auto put = Put(own, "w" + std::to_string(i), PatternBytes(9000), quota);
      if (put.has_value()) {
        ++stored;
      } else {
        EXPECT_EQ(put.error().code(), Code::kQuotaExceeded) << put.error().ToString();
        ++refused;
      }
    });
  }
  for (auto& writer : writers) writer.join();
  // 40000 bytes hold 1000 + 4 x 9000; 5 files hold 1 + 4.
  EXPECT_EQ(stored.load(), 4);
  EXPECT_EQ(refused.load(), 8);
  auto usage = store.Measure();
  EXPECT_EQ(usage->files, 5u);
  EXPECT_EQ(usage->bytes, 37000u);
}

// A replacement whose file another writer deleted meanwhile, the freed
// place being taken, would add a file past the count: checked at commit.
TEST_P(StoreTest, AReplacementOfADeletedFileCannotPassTheCount) {
  const Quota quota{
      .max_file_size = std::nullopt, .max_file_count = 1, .max_data_size = std::nullopt};
  TenantStore store = Open();
  ASSERT_TRUE(Put(store, "a", PatternBytes(10), quota).has_value());
  TenantStore other = Open();
  const Bytes content = PatternBytes(5000);
  size_t offset = 0;
  bool meddled = false;
  const Reader meddling = [&](std::span<uint8_t> buffer) -> Result<size_t> {
    if (!meddled) {  // while the replacement of "a" streams
      meddled = true;
      EXPECT_TRUE(other.Delete("a").ok());
      EXPECT_TRUE(Put(other, "b", PatternBytes(10), quota).has_value());
    }
    const size_t n = std::min(buffer.size(), content.size() - offset);
    std::copy_n(content.begin() + static_cast<ptrdiff_t>(offset), n, buffer.begin());
    offset += n;
    return n;
  };
  auto replaced = store.Put(materials_, "a", meddling, content.size(), quota, 64);
  ASSERT_FALSE(replaced.has_value());
  EXPECT_EQ(replaced.error().code(), Code::kQuotaExceeded);
  EXPECT_THAT(replaced.error().message(), HasSubstr("deleted meanwhile"));
  auto listed = store.List();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "b");
}

TEST_P(StoreTest, TenantNamesThatAreNotNamesAreRefused) {
  for (const std::string tenant : {"..", "x/../acme", "", "a/b"}) {
    auto store = TenantStore::Open(root_, tenant, true, GetParam());
    ASSERT_FALSE(store.has_value()) << tenant;
    EXPECT_EQ(store.error().code(), Code::kInvalidArgument) << tenant;
  }
  EXPECT_TRUE(fs::is_empty(root_));
}

TEST_P(StoreTest, ALiveWritersReservationCountsAndADeadOnesIsRemoved) {
  TenantStore store = Open();
  const Quota quota{.max_file_size = std::nullopt, .max_file_count = 10, .max_data_size = 1000};
  // A writer in flight (its temporary file locked) reserved 800 bytes.
  const std::string live = root_ + "/acme/.kmsd-tmp-00000000000000aa-800-n";
  const int fd = ::open(live.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  auto refused = Put(store, "x", PatternBytes(300), quota);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kQuotaExceeded);
  // Its writer dies: the lock goes with it, and the next writer removes it.
  ::close(fd);
  ASSERT_TRUE(Put(store, "x", PatternBytes(300), quota).has_value());
  EXPECT_FALSE(fs::exists(live));
  // Temporary files and the lock are never listed.
  auto listed = store.List();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "x");
}

INSTANTIATE_TEST_SUITE_P(Resolvers, StoreTest,
                         ::testing::Values(Resolver::kOpenat2, Resolver::kWalk),
                         [](const auto& info) {
                           return info.param == Resolver::kOpenat2 ? "Openat2" : "OpenatWalk";
                         });

}  // namespace
}  // namespace kmsd::store
