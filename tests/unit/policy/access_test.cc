// AccessPolicy: admins by uid or gid may do everything; everyone else is denied.
#include "policy/access.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const AccessPolicy kPolicy({1000, 0}, {2000});

TEST(AccessPolicyTest, AdminUidMayCallAnything) {
  const Peer peer{.uid = 1000, .gid = 5, .pid = 1};
  EXPECT_TRUE(kPolicy.IsAdmin(peer));
  EXPECT_TRUE(kPolicy.Authorize(peer, nullptr, "encrypt", std::nullopt, "acme").ok());
  EXPECT_TRUE(kPolicy.Authorize(peer, nullptr, "tenant.create", std::nullopt, "").ok());
  EXPECT_TRUE(
      kPolicy.Authorize({.uid = 0, .gid = 0, .pid = 1}, nullptr, "status", std::nullopt, "").ok());
}

TEST(AccessPolicyTest, AdminGidMayCallAnything) {
  const Peer peer{.uid = 4242, .gid = 2000, .pid = 1};
  EXPECT_TRUE(kPolicy.IsAdmin(peer));
  EXPECT_TRUE(kPolicy.Authorize(peer, nullptr, "decrypt", std::nullopt, "acme").ok());
}

TEST(AccessPolicyTest, OtherPeersAreDeniedWithUidAndOpInTheMessage) {
  const Peer peer{.uid = 4242, .gid = 4343, .pid = 99};
  EXPECT_FALSE(kPolicy.IsAdmin(peer));
  Status s = kPolicy.Authorize(peer, nullptr, "encrypt", std::nullopt, "acme");
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_THAT(s.message(), HasSubstr("uid 4242"));
  EXPECT_THAT(s.message(), HasSubstr("gid 4343"));
  EXPECT_THAT(s.message(), HasSubstr("'encrypt'"));
  EXPECT_THAT(s.message(), HasSubstr("tenant 'acme'"));
}

TEST(AccessPolicyTest, DeniedMessageOmitsAnEmptyTenant) {
  Status s =
      kPolicy.Authorize({.uid = 7, .gid = 7, .pid = 7}, nullptr, "tenant.list", std::nullopt, "");
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_THAT(s.message(), HasSubstr("'tenant.list'"));
  EXPECT_THAT(s.message(), Not(HasSubstr("tenant '")));
}

TEST(AccessPolicyTest, AdminUidDoesNotMatchAsGidNorGidAsUid) {
  // uid 2000 is only an admin gid; gid 1000 is only an admin uid.
  const Peer peer{.uid = 2000, .gid = 1000, .pid = 1};
  EXPECT_FALSE(kPolicy.IsAdmin(peer));
  EXPECT_EQ(kPolicy.Authorize(peer, nullptr, "status", std::nullopt, "").code(),
            Code::kAccessDenied);
}

TEST(AccessPolicyTest, EmptyPolicyDeniesEveryoneIncludingRoot) {
  const AccessPolicy nobody({}, {});
  Status s = nobody.Authorize({.uid = 0, .gid = 0, .pid = 1}, nullptr, "status", std::nullopt, "");
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_THAT(s.message(), HasSubstr("uid 0"));
}

TEST(AccessPolicyTest, DeniedMessageBoundsHostileOpAndTenant) {
  const std::string op(10000, 'o'), tenant(10000, 't');
  Status s = kPolicy.Authorize({.uid = 1, .gid = 1, .pid = 1}, nullptr, op, std::nullopt, tenant);
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_LT(s.message().size(), 300u);
}

TEST(AccessPolicyTest, LargeIdsAreComparedExactly) {
  const AccessPolicy policy({UINT64_MAX}, {});
  EXPECT_TRUE(policy.IsAdmin({.uid = UINT64_MAX, .gid = 0, .pid = 0}));
  EXPECT_FALSE(policy.IsAdmin({.uid = UINT32_MAX, .gid = 0, .pid = 0}));
  Status s = policy.Authorize({.uid = UINT32_MAX, .gid = 0, .pid = 0}, nullptr, "status",
                              std::nullopt, "");
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_THAT(s.message(), HasSubstr("uid 4294967295"));
}

TEST(AccessPolicyTest, SupplementaryGroupListedAsAdminGidMakesAnAdmin) {
  const Peer peer{.uid = 4242, .gid = 4343, .pid = 1, .groups = {10, 2000, 30}};
  EXPECT_TRUE(kPolicy.IsAdmin(peer));
  EXPECT_TRUE(kPolicy.MayConnect(peer));
  EXPECT_TRUE(kPolicy.Authorize(peer, nullptr, "encrypt", std::nullopt, "acme").ok());
}

TEST(AccessPolicyTest, SupplementaryGroupsNotListedDoNotMakeAnAdmin) {
  // 1000 is an admin uid, never an admin group.
  const Peer peer{.uid = 4242, .gid = 4343, .pid = 1, .groups = {10, 1000, 30}};
  EXPECT_FALSE(kPolicy.IsAdmin(peer));
  EXPECT_FALSE(kPolicy.MayConnect(peer));
  EXPECT_EQ(kPolicy.Authorize(peer, nullptr, "status", std::nullopt, "").code(),
            Code::kAccessDenied);
}

TEST(AccessPolicyTest, OnlyAdminsMayConnect) {
  EXPECT_TRUE(kPolicy.MayConnect({.uid = 1000, .gid = 5, .pid = 1}));
  EXPECT_TRUE(kPolicy.MayConnect({.uid = 4242, .gid = 2000, .pid = 1}));
  EXPECT_FALSE(kPolicy.MayConnect({.uid = 4242, .gid = 4343, .pid = 1}));
  EXPECT_FALSE(AccessPolicy({}, {}).MayConnect({.uid = 0, .gid = 0, .pid = 1}));
}

}  // namespace
}  // namespace kmsd
