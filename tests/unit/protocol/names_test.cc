// Tenant, key and alias names: ^[a-z0-9][a-z0-9-]{0,62}$, aliases "alias/" + that.
#include "protocol/names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string k63(63, 'a');
const std::string k64(64, 'a');

std::vector<std::string> ValidNames() {
  return {"a",   "0",         "z",    "9",  "a-", "a-b",
          "0-0", "tenant-42", "a--b", "9z", k63,  "0" + std::string(62, '-')};
}

std::vector<std::string> InvalidNames() {
  return {"",
          "-",
          "-a",
          "A",
          "aB",
          "Acme",
          "a/b",
          "/a",
          "a_b",
          "a.b",
          "a b",
          " a",
          "a ",
          "a\n",
          std::string("a\0b", 3),
          std::string("\0", 1),
          std::string("a\0", 2),
          "caf\xc3\xa9",
          "\xff",
          k64,
          std::string(1000, 'a'),
          "alias/data"};
}

TEST(NamesTest, AcceptsValidTenantAndKeyNames) {
  for (const auto& name : ValidNames()) {
    EXPECT_TRUE(ValidateTenantName(name).ok()) << name;
    EXPECT_TRUE(ValidateKeyName(name).ok()) << name;
  }
}

TEST(NamesTest, RejectsInvalidTenantNamesWithInvalidArgument) {
  for (const auto& name : InvalidNames()) {
    Status s = ValidateTenantName(name);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("tenant name")) << name;
  }
}

TEST(NamesTest, RejectsInvalidKeyNamesWithInvalidArgument) {
  for (const auto& name : InvalidNames()) {
    Status s = ValidateKeyName(name);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("key name")) << name;
  }
}

TEST(NamesTest, AcceptsSixtyThreeCharactersAndRejectsSixtyFour) {
  EXPECT_TRUE(ValidateTenantName(k63).ok());
  EXPECT_EQ(ValidateTenantName(k64).code(), Code::kInvalidArgument);
  EXPECT_TRUE(ValidateKeyName(k63).ok());
  EXPECT_EQ(ValidateKeyName(k64).code(), Code::kInvalidArgument);
  EXPECT_TRUE(ValidateAliasName("alias/" + k63).ok());
  EXPECT_EQ(ValidateAliasName("alias/" + k64).code(), Code::kInvalidArgument);
}

TEST(NamesTest, AcceptsEveryAllowedCharacterAndRejectsEveryOther) {
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool allowed = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
    const std::string inner = std::string("a") + ch + "b";
    EXPECT_EQ(ValidateKeyName(inner).ok(), allowed) << "char " << c;
    const bool allowed_first = allowed && ch != '-';
    const std::string first = std::string(1, ch) + "b";
    EXPECT_EQ(ValidateKeyName(first).ok(), allowed_first) << "char " << c;
  }
}

TEST(NamesTest, ErrorMessageShowsOnlyABoundedPrintablePrefix) {
  std::string hostile("x\0\n\x1b[31m", 8);
  hostile.append(5000, 'Z');  // not operator+: GCC 12 -O2 warns falsely (array-bounds)
  Status s = ValidateTenantName(hostile);
  ASSERT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_LT(s.message().size(), 300u);
  EXPECT_THAT(s.message(), HasSubstr("x???[31m"));
  EXPECT_THAT(s.message(), HasSubstr("..."));
  for (char c : s.message()) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte " << static_cast<int>(c);
  }
}

TEST(NamesTest, AcceptsValidAliasNames) {
  for (const auto& name : ValidNames()) {
    EXPECT_TRUE(ValidateAliasName("alias/" + name).ok()) << name;
  }
}

TEST(NamesTest, RejectsAliasNamesWithoutThePrefix) {
  for (const std::string name : {"", "data", "alias", "alias-data", "Alias/data", "ALIAS/data",
                                 "/alias/data", " alias/data", "aliases/data"}) {
    Status s = ValidateAliasName(name);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("must start with 'alias/'")) << name;
  }
}

TEST(NamesTest, RejectsAliasNamesWithABadName) {
  for (const auto& name : InvalidNames()) {
    Status s = ValidateAliasName("alias/" + name);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("alias name")) << name;
  }
  EXPECT_EQ(ValidateAliasName("alias/alias/data").code(), Code::kInvalidArgument);
  EXPECT_EQ(ValidateAliasName("alias//data").code(), Code::kInvalidArgument);
}

TEST(NamesTest, KeyReferenceIsAKeyNameOrAnAliasName) {
  EXPECT_TRUE(ValidateKeyReference("billing").ok());
  EXPECT_TRUE(ValidateKeyReference("alias/billing").ok());
  EXPECT_FALSE(IsAliasReference("billing"));
  EXPECT_TRUE(IsAliasReference("alias/billing"));
  EXPECT_TRUE(IsAliasReference("alias/"));          // shape, not validity
  EXPECT_TRUE(ValidateKeyReference("alias").ok());  // a key that happens to be called "alias"
}

TEST(NamesTest, RejectsBadKeyReferences) {
  for (const std::string ref :
       {"", "alias/", "alias/-x", "alias/X", "Billing", "a/b", "alias/a/b", "-billing"}) {
    EXPECT_EQ(ValidateKeyReference(ref).code(), Code::kInvalidArgument) << ref;
  }
  EXPECT_EQ(ValidateKeyReference("alias/" + k64).code(), Code::kInvalidArgument);
  EXPECT_EQ(ValidateKeyReference(k64).code(), Code::kInvalidArgument);
  EXPECT_THAT(ValidateKeyReference("alias/X").message(), Not(HasSubstr("key name")));
}

}  // namespace
}  // namespace kmsd
