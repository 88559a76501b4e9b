// kmsd's copy of SoftHSM2's token.object (softhsm_files.h) against a real
// SoftHSM2 token: a login keeps the copy, a token.object emptied the way a
// kill inside SoftHSM2's rewrite leaves it is restored before C_Initialize,
// and the token and its keys are found again. Without the copy the same
// damage loses the token: that is checked too.
#include "pkcs11/softhsm_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "pkcs11/module.h"
#include "pkcs11/token.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/test_helpers.h"

namespace kmsd {
namespace {

namespace fs = std::filesystem;
using pkcs11::kTokenObjectCopyName;
using pkcs11::Module;
using pkcs11::Token;
using ::testing::HasSubstr;

std::string Contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class SoftHsmFilesTest : public ::testing::Test {
 protected:
  fs::path TokenRoot() const { return softhsm_.dir() / "tokens"; }
  // The one directory SoftHSM2 made for the token.
  fs::path TokenDir() const {
    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(TokenRoot())) dirs.push_back(entry.path());
    EXPECT_EQ(dirs.size(), 1u);
    return dirs.empty() ? fs::path() : dirs[0];
  }
  Result<std::unique_ptr<Token>> Open() {
    auto module = Module::Load(SOFTHSM_MODULE);
    if (!module) return Error(module.error());
    return Token::Open(*module, softhsm_.label(), SecretBuffer::CopyOf(softhsm_.user_pin()), 1);
  }
  // What a kill between SoftHSM2's O_TRUNC and its write leaves.
  void EmptyTokenObject() { fs::resize_file(TokenDir() / "token.object", 0); }

  testing::SoftHsmToken softhsm_{"files-test"};
};

TEST_F(SoftHsmFilesTest, TheTokenDirComesFromSoftHsmsConfigurationForSoftHsmOnly) {
  EXPECT_EQ(pkcs11::SoftHsmTokenDir(SOFTHSM_MODULE), TokenRoot());
  EXPECT_EQ(pkcs11::SoftHsmTokenDir("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"), std::nullopt);
  testing::TempDir dir;
  const std::string conf = dir / "softhsm2.conf";
  std::ofstream(conf) << "# a comment = not this\n  directories.tokendir =  /srv/tokens  # here\n";
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  EXPECT_EQ(pkcs11::SoftHsmTokenDir(SOFTHSM_MODULE), fs::path("/srv/tokens"));
  std::ofstream(conf) << "directories.tokendir = /srv/tokens\nobjectstore.backend = db\n";
  EXPECT_EQ(pkcs11::SoftHsmTokenDir(SOFTHSM_MODULE), std::nullopt);
  std::ofstream(conf) << "log.level = ERROR\n";
  EXPECT_EQ(pkcs11::SoftHsmTokenDir(SOFTHSM_MODULE), std::nullopt);
  setenv("SOFTHSM2_CONF", (dir / "missing.conf").c_str(), 1);
  EXPECT_EQ(pkcs11::SoftHsmTokenDir(SOFTHSM_MODULE), std::nullopt);
  setenv("SOFTHSM2_CONF", softhsm_.conf_path().c_str(), 1);
}

TEST_F(SoftHsmFilesTest, ALoginKeepsACopyOfTokenObjectWithItsMode) {
  const fs::path copy = TokenDir() / kTokenObjectCopyName;
  ASSERT_FALSE(fs::exists(copy));
  auto token = Open();
  ASSERT_TRUE(token) << token.error();
  ASSERT_TRUE(fs::exists(copy));
  EXPECT_EQ(Contents(copy), Contents(TokenDir() / "token.object"));
  EXPECT_FALSE(Contents(copy).empty());
  EXPECT_EQ(ModeOf(copy), ModeOf(TokenDir() / "token.object"));
  // No temporary file is left behind.
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(TokenDir())) {
    EXPECT_EQ(entry.path().filename().string().find("kmsd-tmp"), std::string::npos);
    ++files;
  }
  EXPECT_GE(files, 3u);  // token.object, token.lock, the copy
}

TEST_F(SoftHsmFilesTest, AnEmptiedTokenObjectIsRestoredAndTheTokenKeepsItsKeys) {
  {
    auto token = Open();
    ASSERT_TRUE(token) << token.error();
    ASSERT_TRUE((*token)->CreateTokenWrappingKey("kept-kek"));
  }
  const std::string whole = Contents(TokenDir() / "token.object");
  EmptyTokenObject();
  auto token = Open();
  ASSERT_TRUE(token) << token.error();
  // The same file, but for the generation count in its first 8 bytes (the
  // login wrote it again).
  const std::string now = Contents(TokenDir() / "token.object");
  ASSERT_EQ(now.size(), whole.size());
  EXPECT_EQ(now.substr(8), whole.substr(8));
  auto keys = (*token)->FindTokenSecretKeysByLabel("kept-kek");
  ASSERT_TRUE(keys) << keys.error();
  EXPECT_EQ(keys->size(), 1u);
}

// The damage the copy guards against: without it the token is gone.
TEST_F(SoftHsmFilesTest, WithoutTheCopyAnEmptiedTokenObjectLosesTheToken) {
  { ASSERT_TRUE(Open()); }
  fs::remove(TokenDir() / kTokenObjectCopyName);
  EmptyTokenObject();
  auto token = Open();
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code(), Code::kNotFound);
  EXPECT_THAT(token.error().message(), HasSubstr("no token labelled 'files-test'"));
}

TEST_F(SoftHsmFilesTest, AWholeTokenObjectAndDirectoriesWithoutACopyAreLeftAlone) {
  { ASSERT_TRUE(Open()); }
  const fs::path token_dir = TokenDir();
  const fs::path other = TokenRoot() / "not-a-token";
  fs::create_directories(other);
  std::ofstream(other / "token.object") << "";
  auto restored = pkcs11::RestoreTokenObjects(TokenRoot());
  ASSERT_TRUE(restored) << restored.error();
  EXPECT_TRUE(restored->empty());
  EXPECT_EQ(fs::file_size(other / "token.object"), 0u);
  // A token.object shorter than its copy but not empty (a token initialized
  // again) is not replaced, nor is a missing one.
  const std::string whole = Contents(token_dir / "token.object");
  std::ofstream(token_dir / kTokenObjectCopyName, std::ios::binary) << whole << "longer";
  restored = pkcs11::RestoreTokenObjects(TokenRoot());
  ASSERT_TRUE(restored) << restored.error();
  EXPECT_TRUE(restored->empty());
  EXPECT_EQ(Contents(token_dir / "token.object"), whole);
  fs::rename(token_dir / "token.object", token_dir / "moved");
  restored = pkcs11::RestoreTokenObjects(TokenRoot());
  ASSERT_TRUE(restored) << restored.error();
  EXPECT_TRUE(restored->empty());
  EXPECT_FALSE(fs::exists(token_dir / "token.object"));
}

TEST_F(SoftHsmFilesTest, ACopyIsKeptOnlyForTheOneTokenWithTheSerial) {
  EXPECT_EQ(pkcs11::KeepTokenObjectCopy(TokenRoot(), "0123456789abcdef").code(), Code::kNotFound);
  EXPECT_EQ(pkcs11::KeepTokenObjectCopy(TokenRoot(), "").code(), Code::kInternal);
  // Two directories claiming one serial (the second made after SoftHSM2 read
  // its tokens): neither is copied.
  auto module = Module::Load(SOFTHSM_MODULE);
  ASSERT_TRUE(module) << module.error();
  const fs::path token_dir = TokenDir();
  const fs::path twin = TokenRoot() / "twin";
  fs::create_directories(twin);
  std::ofstream(twin / "token.object", std::ios::binary) << Contents(token_dir / "token.object");
  auto token = Token::Open(*module, softhsm_.label(), SecretBuffer::CopyOf(softhsm_.user_pin()), 1);
  ASSERT_TRUE(token) << token.error();
  EXPECT_FALSE(fs::exists(token_dir / kTokenObjectCopyName));
  EXPECT_FALSE(fs::exists(twin / kTokenObjectCopyName));
}

}  // namespace
}  // namespace kmsd
