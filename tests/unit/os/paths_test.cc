// DirectoryOf: the directory a file is or would be created in.
#include "os/paths.h"

#include <gtest/gtest.h>

namespace kmsd {
namespace {

TEST(DirectoryOfTest, IsTheParentOfAPath) {
  EXPECT_EQ(DirectoryOf("/var/lib/kmsd/keystore.db"), "/var/lib/kmsd");
  EXPECT_EQ(DirectoryOf("backups/out.kmsb"), "backups");
}

TEST(DirectoryOfTest, IsTheCurrentDirectoryForABareName) {
  EXPECT_EQ(DirectoryOf("keystore.db"), ".");
  EXPECT_EQ(DirectoryOf(""), ".");
}

TEST(DirectoryOfTest, IsTheRootForAFileInTheRoot) { EXPECT_EQ(DirectoryOf("/keystore.db"), "/"); }

}  // namespace
}  // namespace kmsd
