// The config file's text (ParseConfig) and the file itself (LoadConfig, which
// reads it and calls ParseConfig); the fields are docs/CONFIG.md's.
#include "daemon/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kMinimal = R"(pkcs11:
  module: /usr/lib/softhsm/libsofthsm2.so
  token_label: kmsd
  pin_file: /etc/kmsd/user-pin
admins:
  uids: [0]
)";

TEST(ConfigTest, ParsesTheMinimalConfig) {
  auto config = ParseConfig(kMinimal, "kmsd.yaml");
  ASSERT_TRUE(config.has_value()) << config.error();
  EXPECT_EQ(config->token_label, "kmsd");
  EXPECT_EQ(config->pin_file, "/etc/kmsd/user-pin");
  EXPECT_EQ(config->admin_uids, std::set<uint64_t>{0});
  EXPECT_EQ(config->workers, 8u);
}

TEST(ConfigTest, RefusalsNameThePathAndTheField) {
  // Built by append: GCC 12 warns (-Warray-bounds) about string + literal here.
  std::string misspelt(kMinimal);
  misspelt.append("limits:\n  wrokers: 2\n");
  auto unknown = ParseConfig(misspelt, "/etc/k.yaml");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(unknown.error().message(), HasSubstr("config /etc/k.yaml: field 'limits.wrokers'"));
  auto broken = ParseConfig("pkcs11: [unclosed\n", "k.yaml");
  ASSERT_FALSE(broken.has_value());
  EXPECT_THAT(broken.error().message(), HasSubstr("not valid YAML"));
}

TEST(ConfigTest, LoadConfigReadsTheFileAndParsesIt) {
  testing::TempDir dir;
  testing::WriteFileBytes(dir / "kmsd.yaml", std::string(kMinimal));
  auto config = LoadConfig(dir / "kmsd.yaml");
  ASSERT_TRUE(config.has_value()) << config.error();
  EXPECT_EQ(config->token_label, "kmsd");
  auto missing = LoadConfig(dir / "missing.yaml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message(), HasSubstr("missing.yaml: cannot be read"));
}

}  // namespace
}  // namespace kmsd
