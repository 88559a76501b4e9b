// Built-in roles and the principal rules of AccessPolicy: pure functions.
#include "policy/roles.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/access.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using P = Permission;

bool Has(std::string_view role, Permission p) {
  return TenantRolePermissions(role)->test(static_cast<size_t>(p));
}

TEST(RolesTest, ManagersManageButDoNotUseKeys) {
  for (P p : {P::kKeyCreate, P::kKeyRotate, P::kKeyManage, P::kKeyDelete, P::kAliasManage,
              P::kPrincipalManage, P::kApiKeyManage, P::kKeyRead, P::kTenantRead}) {
    EXPECT_TRUE(Has("manager", p)) << PermissionName(p);
  }
  for (P p : {P::kEncrypt, P::kDecrypt, P::kReEncryptFrom, P::kReEncryptTo, P::kGenerateDataKey,
              P::kTenantCreate, P::kTenantDelete, P::kTenantList, P::kServiceBackup}) {
    EXPECT_FALSE(Has("manager", p)) << PermissionName(p);
  }
}

TEST(RolesTest, UsersUseKeysAndViewersOnlyRead) {
  for (P p : {P::kEncrypt, P::kDecrypt, P::kReEncryptFrom, P::kReEncryptTo, P::kGenerateDataKey,
              P::kGenerateRandom}) {
    EXPECT_TRUE(Has("user", p)) << PermissionName(p);
    EXPECT_FALSE(Has("viewer", p)) << PermissionName(p);
  }
  EXPECT_FALSE(Has("user", P::kKeyRead));
  EXPECT_FALSE(Has("user", P::kKeyCreate));
  // Its tenant's description: the storage quotas the client library enforces.
  EXPECT_TRUE(Has("user", P::kTenantRead));
  for (P p : {P::kKeyRead, P::kAliasRead, P::kTenantRead, P::kPrincipalRead, P::kApiKeyRead}) {
    EXPECT_TRUE(Has("viewer", p)) << PermissionName(p);
  }
  for (P p : {P::kKeyCreate, P::kKeyRotate, P::kAliasManage, P::kPrincipalManage}) {
    EXPECT_FALSE(Has("viewer", p)) << PermissionName(p);
  }
}

TEST(RolesTest, OnlyKnownTenantRolesEachOnceAreValid) {
  EXPECT_TRUE(ValidateTenantRoles({"manager", "user"}).ok());
  EXPECT_EQ(ValidateTenantRoles({}).code(), Code::kInvalidArgument);
  EXPECT_THAT(ValidateTenantRoles({"admin"}).message(), HasSubstr("not a tenant role"));
  EXPECT_THAT(ValidateTenantRoles({"owner"}).message(), HasSubstr("unknown role 'owner'"));
  EXPECT_THAT(ValidateTenantRoles({"user", "user"}).message(), HasSubstr("given twice"));
  EXPECT_FALSE(TenantRolePermissions("admin").has_value());
  EXPECT_EQ(PermissionsOf({"user", "nonsense"}), *TenantRolePermissions("user"));
}

TEST(RolesTest, EveryPermissionHasAUniqueNameThatParsesBack) {
  for (size_t i = 0; i < kPermissionCount; ++i) {
    const auto p = static_cast<Permission>(i);
    EXPECT_NE(PermissionName(p), "unknown");
    EXPECT_EQ(PermissionNamed(PermissionName(p)), std::optional<Permission>(p));
  }
  EXPECT_EQ(PermissionNamed("crypto:everything"), std::nullopt);
}

class PrincipalPolicyTest : public ::testing::Test {
 protected:
  AccessPolicy policy_{AccessPolicyOptions{
      .admins = {{0}, {}}, .api_key_peers = {{1001}, {}}, .is_bound_peer = [](const Peer& peer) {
        return peer.uid == 2002;
      }}};
  PrincipalIdentity app_{.tenant = "acme",
                         .name = "app",
                         .api_key_id = "0123456789abcdef",
                         .session_id = {},
                         .mfa = false,
                         .permissions = *TenantRolePermissions("user"),
                         .access = nullptr};
  Peer peer_{.uid = 1001, .gid = 1001, .pid = 7};
};

TEST_F(PrincipalPolicyTest, APrincipalMayDoWhatItsRolesAllowInItsTenant) {
  EXPECT_TRUE(policy_.Authorize(peer_, &app_, "encrypt", P::kEncrypt, "acme").ok());
  EXPECT_TRUE(policy_.Authorize(peer_, &app_, "status", P::kServiceRead, "").ok());
  Status denied = policy_.Authorize(peer_, &app_, "key.create", P::kKeyCreate, "acme");
  EXPECT_EQ(denied.code(), Code::kAccessDenied);
  EXPECT_THAT(denied.message(), HasSubstr("lack the permission 'key:create'"));
  EXPECT_EQ(policy_.Authorize(peer_, &app_, "tenant.list", P::kTenantList, "").code(),
            Code::kAccessDenied);
}

TEST_F(PrincipalPolicyTest, AnotherTenantIsDeniedAlikeWhateverItHolds) {
  Status other = policy_.Authorize(peer_, &app_, "encrypt", P::kEncrypt, "globex");
  EXPECT_EQ(other.code(), Code::kAccessDenied);
  EXPECT_THAT(other.message(), HasSubstr("its own tenant only"));
  // An admin peer presenting a principal's key is that principal.
  const Peer root{.uid = 0, .gid = 0, .pid = 1};
  EXPECT_EQ(policy_.Authorize(root, &app_, "encrypt", P::kEncrypt, "globex").code(),
            Code::kAccessDenied);
  EXPECT_TRUE(policy_.Authorize(root, nullptr, "encrypt", P::kEncrypt, "globex").ok());
}

TEST_F(PrincipalPolicyTest, ListedAndBoundPeersMayConnectButAreNobodyWithoutAKey) {
  EXPECT_TRUE(policy_.MayConnect(peer_));
  EXPECT_TRUE(policy_.MayConnect({.uid = 2002, .gid = 2002, .pid = 1}));
  EXPECT_FALSE(policy_.MayConnect({.uid = 3003, .gid = 3003, .pid = 1}));
  Status bare = policy_.Authorize(peer_, nullptr, "status", P::kServiceRead, "");
  EXPECT_EQ(bare.code(), Code::kAccessDenied);
  EXPECT_THAT(bare.message(), HasSubstr("carries no API key"));
}

}  // namespace
}  // namespace kmsd
