// KeyHierarchy on a real SoftHSM2 token and a real SQLite keystore.
#include "keystore/hierarchy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/keystore/hierarchy_fixture.h"

namespace kmsd {
namespace {

using namespace hierarchy_testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// --- Open and tenants ----------------------------------------------------------

TEST_F(HierarchyTest, OpenCreatesTheGlobalKeysOnceAndAnEmptyCatalog) {
  EXPECT_EQ(TokenLabels(), (std::multiset<std::string>{std::string(kPlatformMasterKeyLabel),
                                                       std::string(kAuditLogKeyLabel),
                                                       std::string(kApiKeyHmacKeyLabel)}));
  EXPECT_EQ(hierarchy_->TenantCount(), 0u);
  EXPECT_EQ(hierarchy_->KeyCount(), 0u);
  EXPECT_TRUE(hierarchy_->ListTenants().empty());
  Reopen();
  EXPECT_EQ(TokenLabels().size(), 3u);  // found again, not created twice
}

TEST_F(HierarchyTest, CreateTenantMakesThreeKeysWithAliasesAndAKekEach) {
  auto info = hierarchy_->CreateTenant("acme");
  ASSERT_TRUE(info.has_value()) << info.error();
  EXPECT_EQ(info->name, "acme");
  EXPECT_EQ(info->created_at, kStart);
  EXPECT_EQ(info->key_count, 3u);
  EXPECT_EQ(info->alias_count, 3u);
  EXPECT_EQ(hierarchy_->TenantCount(), 1u);
  EXPECT_EQ(hierarchy_->KeyCount(), 3u);

  auto keys = hierarchy_->ListKeys("acme");
  ASSERT_TRUE(keys.has_value());
  std::vector<std::string> names;
  for (const auto& key : *keys) {
    names.push_back(key.name);
    EXPECT_EQ(key.tenant, "acme");
    EXPECT_EQ(key.latest_version, 1u);
    EXPECT_EQ(key.created_at, kStart);
    EXPECT_TRUE(key.enabled);
    EXPECT_EQ(key.aliases.size(), 1u);
  }
  EXPECT_THAT(names, ElementsAre("api-keys-key", "data-encryption-key", "secrets-key"));

  auto aliases = hierarchy_->ListAliases("acme");
  ASSERT_TRUE(aliases.has_value());
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& a : *aliases) pairs.emplace_back(a.alias, a.key_name);
  EXPECT_THAT(pairs,
              ElementsAre(std::pair<std::string, std::string>{"alias/api-keys", "api-keys-key"},
                          std::pair<std::string, std::string>{"alias/data", "data-encryption-key"},
                          std::pair<std::string, std::string>{"alias/secrets", "secrets-key"}));

  EXPECT_EQ(TokenObjectsOf("acme"), 3u);
  const KeyStoreSnapshot snapshot = Snapshot();
  ASSERT_EQ(snapshot.tenants.size(), 1u);
  EXPECT_EQ(snapshot.tenants[0].root_label, "");  // no tenant root since schema 3
  ASSERT_EQ(snapshot.keys.size(), 3u);
  for (const KeyRecord& key : snapshot.keys) {
    auto kek = KekOf("acme", key.id);
    ASSERT_TRUE(kek.has_value()) << key.name;
    EXPECT_EQ(key.kek_label, kek->label);
  }
  EXPECT_EQ(snapshot.aliases.size(), 3u);
}

TEST_F(HierarchyTest, KeyVersionsAreStoredOnlyWrapped) {
  MustCreateTenant("acme");
  const KeyStoreSnapshot snapshot = Snapshot();
  ASSERT_EQ(snapshot.versions.size(), 3u);
  std::set<Bytes> distinct;
  for (const auto& v : snapshot.versions) {
    EXPECT_EQ(v.version, 1u);
    EXPECT_EQ(v.wrapped.size(), 40u);  // RFC 5649 of a 32-byte key: 8-byte AIV + 32
    EXPECT_EQ(v.created_at, kStart);
    distinct.insert(v.wrapped);
  }
  EXPECT_EQ(distinct.size(), 3u);
}

TEST_F(HierarchyTest, CreateTenantRejectsBadAndTakenNames) {
  MustCreateTenant("acme");
  const auto labels = TokenLabels();
  for (std::string_view bad : {"", "Acme", "-acme", "acme/x", "alias/acme"}) {
    EXPECT_EQ(CodeOf(hierarchy_->CreateTenant(bad)), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(CodeOf(hierarchy_->CreateTenant(std::string(64, 'a'))), Code::kInvalidArgument);
  auto taken = hierarchy_->CreateTenant("acme");
  ASSERT_EQ(CodeOf(taken), Code::kAlreadyExists);
  EXPECT_THAT(taken.error().message(), HasSubstr("'acme' already exists"));
  EXPECT_EQ(TokenLabels(), labels);  // no root made for a refused tenant
  EXPECT_EQ(hierarchy_->TenantCount(), 1u);
}

TEST_F(HierarchyTest, FailedStoreWriteLeavesNoTenantAndNoKek) {
  const auto labels_before = TokenLabels();
  store_->fail_create_tenant = true;
  auto failed = hierarchy_->CreateTenant("acme");
  ASSERT_EQ(CodeOf(failed), Code::kInternal);
  EXPECT_THAT(failed.error().message(), HasSubstr("injected"));
  EXPECT_EQ(TokenLabels(), labels_before);  // the KEKs were destroyed again
  EXPECT_EQ(TokenObjectsOf("acme"), 0u);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeTenant("acme")), Code::kNotFound);
  EXPECT_EQ(hierarchy_->TenantCount(), 0u);
  EXPECT_EQ(hierarchy_->KeyCount(), 0u);
  EXPECT_TRUE(Snapshot().tenants.empty());
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {})), Code::kNotFound);

  // The name is not half taken.
  store_->fail_create_tenant = false;
  MustCreateTenant("acme");
  EXPECT_EQ(TokenLabels().size(), labels_before.size() + 3);
}

TEST_F(HierarchyTest, DescribeAndListTenants) {
  MustCreateTenant("globex");
  clock_.Advance(10);
  MustCreateTenant("acme");
  auto info = hierarchy_->DescribeTenant("acme");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->created_at, kStart + 10);
  const auto tenants = hierarchy_->ListTenants();
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_EQ(tenants[0].name, "acme");
  EXPECT_EQ(tenants[1].name, "globex");
  EXPECT_EQ(tenants[1].created_at, kStart);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeTenant("initech")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeTenant("Acme")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->ListKeys("initech")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->ListAliases("initech")), Code::kNotFound);
}

// --- Encrypt and decrypt -------------------------------------------------------

TEST_F(HierarchyTest, EncryptThenDecryptRoundTrips) {
  MustCreateTenant("acme");
  const EncryptionContext context = {{"purpose", "billing"}};
  auto out = hierarchy_->Encrypt("acme", "alias/data", AsBytes("card number"), context);
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_EQ(out->key_name, "data-encryption-key");
  EXPECT_EQ(out->version, 1u);
  EXPECT_EQ(out->ciphertext.size(), kCiphertextOverhead + 11);
  auto parsed = ParseCiphertext(out->ciphertext);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->key_id, out->key_id);
  EXPECT_EQ(parsed->version, 1u);

  auto decrypted = hierarchy_->Decrypt("acme", out->ciphertext, context, std::nullopt);
  ASSERT_TRUE(decrypted.has_value()) << decrypted.error();
  EXPECT_TRUE(decrypted->plaintext.EqualsInConstantTime(AsBytes("card number")));
  EXPECT_EQ(decrypted->key_id, out->key_id);
  EXPECT_EQ(decrypted->key_name, "data-encryption-key");
  EXPECT_EQ(decrypted->version, 1u);

  // By key name and with the expected key given either way.
  const Bytes by_name = MustEncrypt("acme", "secrets-key", "");
  EXPECT_EQ(Text(Decrypt("acme", by_name, {}, "secrets-key")), "");
  EXPECT_EQ(Text(Decrypt("acme", by_name, {}, "alias/secrets")), "");
}

TEST_F(HierarchyTest, EncryptionsUseFreshIvs) {
  MustCreateTenant("acme");
  const Bytes a = MustEncrypt("acme", "alias/data", "same");
  const Bytes b = MustEncrypt("acme", "alias/data", "same");
  EXPECT_NE(a, b);
  EXPECT_NE(ParseCiphertext(a)->iv, ParseCiphertext(b)->iv);
}

TEST_F(HierarchyTest, EncryptRejectsUnknownOrBadNames) {
  MustCreateTenant("acme");
  const auto pt = AsBytes("x");
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("globex", "alias/data", pt, {})), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("Acme", "alias/data", pt, {})), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "no-such-key", pt, {})), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/none", pt, {})), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "Data", pt, {})), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/", pt, {})), Code::kInvalidArgument);
}

TEST_F(HierarchyTest, DecryptRequiresTheSameContext) {
  MustCreateTenant("acme");
  const EncryptionContext context = {{"user", "42"}, {"table", "cards"}};
  const Bytes ct = MustEncrypt("acme", "alias/data", "secret", context);
  EXPECT_EQ(Text(Decrypt("acme", ct, context)), "secret");
  for (const EncryptionContext& other :
       {EncryptionContext{}, EncryptionContext{{"user", "42"}},
        EncryptionContext{{"user", "43"}, {"table", "cards"}},
        EncryptionContext{{"user", "42"}, {"table", "cards"}, {"x", ""}}}) {
    EXPECT_EQ(CodeOf(Decrypt("acme", ct, other)), Code::kInvalidCiphertext);
  }
}

TEST_F(HierarchyTest, DecryptRejectsEveryBitFlipAndTruncation) {
  MustCreateTenant("acme");
  const Bytes ct = MustEncrypt("acme", "alias/data", "0123456789");
  for (size_t i = 0; i < ct.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = ct;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_EQ(CodeOf(Decrypt("acme", bad)), Code::kInvalidCiphertext)
          << "byte " << i << " bit " << bit;
    }
  }
  for (size_t n = 0; n < ct.size(); ++n) {
    ASSERT_EQ(CodeOf(Decrypt("acme", std::span(ct).first(n))), Code::kInvalidCiphertext)
        << "length " << n;
  }
  EXPECT_EQ(Text(Decrypt("acme", ct)), "0123456789");
}

TEST_F(HierarchyTest, DecryptRefusesCiphertextOfAnotherTenantLikeAnUnknownKey) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  const Bytes ct = MustEncrypt("acme", "alias/data", "acme's secret");
  auto foreign = Decrypt("globex", ct);
  ASSERT_EQ(CodeOf(foreign), Code::kInvalidCiphertext);
  // No oracle: the same answer as for a key id nobody has.
  Bytes unknown = ct;
  unknown[2] ^= 0xff;
  auto missing = Decrypt("globex", unknown);
  ASSERT_EQ(CodeOf(missing), Code::kInvalidCiphertext);
  EXPECT_EQ(foreign.error().message(), missing.error().message());
  EXPECT_EQ(CodeOf(Decrypt("initech", ct)), Code::kNotFound);
}

TEST_F(HierarchyTest, DecryptWithAnExpectedKeyRefusesOtherKeys) {
  MustCreateTenant("acme");
  const Bytes ct = MustEncrypt("acme", "alias/data", "x");
  auto other = Decrypt("acme", ct, {}, "secrets-key");
  ASSERT_EQ(CodeOf(other), Code::kInvalidCiphertext);
  EXPECT_THAT(other.error().message(), HasSubstr("'secrets-key'"));
  EXPECT_EQ(CodeOf(Decrypt("acme", ct, {}, "alias/secrets")), Code::kInvalidCiphertext);
  EXPECT_EQ(CodeOf(Decrypt("acme", ct, {}, "no-such-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(Decrypt("acme", ct, {}, "Bad")), Code::kInvalidArgument);
}

// --- Keys and rotation ---------------------------------------------------------

TEST_F(HierarchyTest, CreateKeyAddsAUsableKey) {
  MustCreateTenant("acme");
  clock_.Advance(60);
  auto key = hierarchy_->CreateKey("acme", "billing", "for invoices");
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_EQ(key->name, "billing");
  EXPECT_EQ(key->description, "for invoices");
  EXPECT_EQ(key->created_at, kStart + 60);
  EXPECT_EQ(key->latest_version, 1u);
  EXPECT_TRUE(key->aliases.empty());
  EXPECT_EQ(hierarchy_->KeyCount(), 4u);
  const Bytes ct = MustEncrypt("acme", "billing", "invoice");
  EXPECT_EQ(Text(Decrypt("acme", ct, {}, "billing")), "invoice");
  auto described = hierarchy_->DescribeKey("acme", "billing");
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->id, key->id);
  EXPECT_EQ(hierarchy_->DescribeTenant("acme")->key_count, 4u);
}

TEST_F(HierarchyTest, CreateKeyRejectsBadTakenAndUnknown) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "secrets-key", "")), Code::kAlreadyExists);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "alias/x", "")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "Billing", "")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "", "")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("globex", "billing", "")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "long", std::string(1025, 'd'))),
            Code::kInvalidArgument);
  EXPECT_TRUE(hierarchy_->CreateKey("acme", "long", std::string(1024, 'd')).has_value());
  EXPECT_EQ(hierarchy_->KeyCount(), 4u);
}

TEST_F(HierarchyTest, FailedStoreWriteLeavesNoKey) {
  MustCreateTenant("acme");
  store_->fail_create_key = true;
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "billing", "")), Code::kInternal);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "billing")), Code::kNotFound);
  EXPECT_EQ(hierarchy_->KeyCount(), 3u);
  store_->fail_create_key = false;
  EXPECT_TRUE(hierarchy_->CreateKey("acme", "billing", "").has_value());
}

TEST_F(HierarchyTest, RotateAddsAVersionAndOldCiphertextsStillDecrypt) {
  MustCreateTenant("acme");
  const Bytes v1 = MustEncrypt("acme", "alias/data", "before");
  clock_.Advance(100);
  auto rotated = hierarchy_->RotateKey("acme", "alias/data");
  ASSERT_TRUE(rotated.has_value()) << rotated.error();
  EXPECT_EQ(rotated->name, "data-encryption-key");
  EXPECT_EQ(rotated->latest_version, 2u);
  EXPECT_EQ(rotated->created_at, kStart);  // the key's, not the version's

  auto out = hierarchy_->Encrypt("acme", "data-encryption-key", AsBytes("after"), {});
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 2u);
  EXPECT_EQ(ParseCiphertext(out->ciphertext)->version, 2u);
  EXPECT_EQ(Text(Decrypt("acme", v1)), "before");
  EXPECT_EQ(Text(Decrypt("acme", out->ciphertext)), "after");
  auto decrypted = hierarchy_->Decrypt("acme", v1, {}, std::nullopt);
  ASSERT_TRUE(decrypted.has_value());
  EXPECT_EQ(decrypted->version, 1u);

  auto versions = hierarchy_->ListVersions("acme", "alias/data");
  ASSERT_TRUE(versions.has_value());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].version, 1u);
  EXPECT_EQ((*versions)[0].created_at, kStart);
  EXPECT_EQ((*versions)[1].version, 2u);
  EXPECT_EQ((*versions)[1].created_at, kStart + 100);
  // Other keys are untouched.
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "secrets-key")->latest_version, 1u);
}

TEST_F(HierarchyTest, CiphertextNamingAVersionNotYetMadeIsInvalid) {
  MustCreateTenant("acme");
  Bytes ct = MustEncrypt("acme", "alias/data", "x");
  ct[21] = 2;  // version 2 of a key that has only 1
  auto r = Decrypt("acme", ct);
  ASSERT_EQ(CodeOf(r), Code::kInvalidCiphertext);
  EXPECT_THAT(r.error().message(), HasSubstr("version"));
}

TEST_F(HierarchyTest, RotateRejectsUnknownKeysAndFailedWrites) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "no-such-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/none")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("globex", "alias/data")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "Bad")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->ListVersions("acme", "no-such-key")), Code::kNotFound);
  store_->fail_add_version = true;
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/data")), Code::kInternal);
  EXPECT_EQ(hierarchy_->ListVersions("acme", "alias/data")->size(), 1u);
  auto out = hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {});
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 1u);
}

// --- Aliases -------------------------------------------------------------------

TEST_F(HierarchyTest, CreateAliasPointsAtAKey) {
  MustCreateTenant("acme");
  clock_.Advance(5);
  auto alias = hierarchy_->CreateAlias("acme", "alias/billing", "secrets-key");
  ASSERT_TRUE(alias.has_value()) << alias.error();
  EXPECT_EQ(alias->alias, "alias/billing");
  EXPECT_EQ(alias->key_name, "secrets-key");
  EXPECT_EQ(alias->created_at, kStart + 5);
  EXPECT_EQ(alias->updated_at, kStart + 5);
  auto key = hierarchy_->DescribeKey("acme", "alias/billing");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->name, "secrets-key");
  EXPECT_EQ(key->id, alias->key_id);
  EXPECT_THAT(key->aliases, ElementsAre("alias/billing", "alias/secrets"));
  auto out = hierarchy_->Encrypt("acme", "alias/billing", AsBytes("x"), {});
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->key_name, "secrets-key");
  EXPECT_EQ(hierarchy_->DescribeTenant("acme")->alias_count, 4u);
}

TEST_F(HierarchyTest, CreateAliasRejectsBadTakenAndUnknown) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/data", "secrets-key")),
            Code::kAlreadyExists);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/x", "no-such-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("globex", "alias/x", "secrets-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "billing", "secrets-key")),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/Billing", "secrets-key")),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/", "secrets-key")),
            Code::kInvalidArgument);
  // An alias names a key, never another alias.
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/x", "alias/data")),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/x", "Bad")), Code::kInvalidArgument);
  EXPECT_EQ(hierarchy_->ListAliases("acme")->size(), 3u);
}

TEST_F(HierarchyTest, UpdateAliasRetargetsIt) {
  MustCreateTenant("acme");
  const Bytes before = MustEncrypt("acme", "alias/data", "old target");
  clock_.Advance(30);
  auto updated = hierarchy_->UpdateAlias("acme", "alias/data", "secrets-key");
  ASSERT_TRUE(updated.has_value()) << updated.error();
  EXPECT_EQ(updated->key_name, "secrets-key");
  EXPECT_EQ(updated->created_at, kStart);
  EXPECT_EQ(updated->updated_at, kStart + 30);
  auto out = hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {});
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->key_name, "secrets-key");
  // Ciphertexts name their key by id, so the old one still decrypts, but no
  // longer "through" the alias.
  EXPECT_EQ(Text(Decrypt("acme", before)), "old target");
  EXPECT_EQ(CodeOf(Decrypt("acme", before, {}, "alias/data")), Code::kInvalidCiphertext);
  EXPECT_TRUE(hierarchy_->DescribeKey("acme", "data-encryption-key")->aliases.empty());
}

TEST_F(HierarchyTest, UpdateAliasRejectsBadAndUnknown) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/none", "secrets-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/data", "no-such-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("globex", "alias/data", "secrets-key")),
            Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "data", "secrets-key")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/data", "alias/secrets")),
            Code::kInvalidArgument);
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/data")->name, "data-encryption-key");
}

TEST_F(HierarchyTest, DeleteAliasRemovesOnlyTheAlias) {
  MustCreateTenant("acme");
  const Bytes ct = MustEncrypt("acme", "alias/data", "kept");
  ASSERT_TRUE(hierarchy_->DeleteAlias("acme", "alias/data").ok());
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "alias/data")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {})), Code::kNotFound);
  EXPECT_EQ(Text(Decrypt("acme", ct)), "kept");
  EXPECT_EQ(hierarchy_->ListAliases("acme")->size(), 2u);
  EXPECT_EQ(CodeOf(hierarchy_->DeleteAlias("acme", "alias/data")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->DeleteAlias("globex", "alias/secrets")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->DeleteAlias("acme", "secrets-key")), Code::kInvalidArgument);
  // The name is free again.
  EXPECT_TRUE(hierarchy_->CreateAlias("acme", "alias/data", "api-keys-key").has_value());
}

TEST_F(HierarchyTest, FailedAliasWritesChangeNothing) {
  MustCreateTenant("acme");
  store_->fail_aliases = true;
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/x", "secrets-key")), Code::kInternal);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/data", "secrets-key")), Code::kInternal);
  EXPECT_EQ(CodeOf(hierarchy_->DeleteAlias("acme", "alias/data")), Code::kInternal);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "alias/x")), Code::kNotFound);
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/data")->name, "data-encryption-key");
}

// --- Reopening -----------------------------------------------------------------

TEST_F(HierarchyTest, OpenAgainReloadsEverything) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  ASSERT_TRUE(hierarchy_->CreateKey("acme", "billing", "invoices").has_value());
  ASSERT_TRUE(hierarchy_->CreateAlias("acme", "alias/bill", "billing").has_value());
  const Bytes v1 = MustEncrypt("acme", "billing", "v1");
  clock_.Advance(7);
  ASSERT_TRUE(hierarchy_->RotateKey("acme", "billing").has_value());
  const Bytes v2 = MustEncrypt("acme", "alias/bill", "v2");
  ASSERT_TRUE(hierarchy_->UpdateAlias("globex", "alias/data", "secrets-key").has_value());
  ASSERT_TRUE(hierarchy_->DeleteAlias("globex", "alias/api-keys").ok());
  const Bytes g = MustEncrypt("globex", "alias/data", "g");
  const auto labels = TokenLabels();
  const auto keys_before = *hierarchy_->ListKeys("acme");

  Reopen();

  EXPECT_EQ(TokenLabels(), labels);
  EXPECT_EQ(hierarchy_->TenantCount(), 2u);
  EXPECT_EQ(hierarchy_->KeyCount(), 7u);
  const auto keys_after = *hierarchy_->ListKeys("acme");
  ASSERT_EQ(keys_after.size(), keys_before.size());
  for (size_t i = 0; i < keys_after.size(); ++i) {
    EXPECT_EQ(keys_after[i].id, keys_before[i].id);
    EXPECT_EQ(keys_after[i].name, keys_before[i].name);
    EXPECT_EQ(keys_after[i].description, keys_before[i].description);
    EXPECT_EQ(keys_after[i].latest_version, keys_before[i].latest_version);
    EXPECT_EQ(keys_after[i].aliases, keys_before[i].aliases);
  }
  auto versions = hierarchy_->ListVersions("acme", "billing");
  ASSERT_TRUE(versions.has_value());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[1].created_at, kStart + 7);
  EXPECT_EQ(Text(Decrypt("acme", v1)), "v1");
  EXPECT_EQ(Text(Decrypt("acme", v2, {}, "alias/bill")), "v2");
  EXPECT_EQ(Text(Decrypt("globex", g, {}, "secrets-key")), "g");
  EXPECT_EQ(hierarchy_->DescribeKey("globex", "alias/data")->name, "secrets-key");
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("globex", "alias/api-keys")), Code::kNotFound);
  auto out = hierarchy_->Encrypt("acme", "billing", AsBytes("x"), {});
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 2u);
  EXPECT_EQ(CodeOf(hierarchy_->CreateTenant("acme")), Code::kAlreadyExists);
}

TEST_F(HierarchyTest, ADestroyedKekShredsThatKeyOnly) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  const Bytes acme_ct = MustEncrypt("acme", "alias/data", "acme");
  const Bytes acme_other = MustEncrypt("acme", "alias/secrets", "other");
  const Bytes globex_ct = MustEncrypt("globex", "alias/data", "globex");
  const KeyId id = IdOf("acme", "alias/data");
  hierarchy_.reset();
  auto kek = KekOf("acme", id);
  ASSERT_TRUE(kek.has_value());
  ASSERT_TRUE(token_->DestroyObject(kek->handle).ok());
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());

  auto encrypt = hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {});
  ASSERT_EQ(CodeOf(encrypt), Code::kNotFound);
  EXPECT_THAT(encrypt.error().message(), HasSubstr("shredded"));
  auto decrypt = Decrypt("acme", acme_ct);
  ASSERT_EQ(CodeOf(decrypt), Code::kNotFound);
  EXPECT_THAT(decrypt.error().message(), HasSubstr("shredded"));
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/data")), Code::kNotFound);
  // The tenant's other keys and the other tenant are unaffected.
  EXPECT_EQ(Text(Decrypt("acme", acme_other)), "other");
  EXPECT_TRUE(hierarchy_->CreateKey("acme", "billing", "").has_value());
  EXPECT_EQ(Text(Decrypt("globex", globex_ct)), "globex");
  EXPECT_EQ(Text(Decrypt("globex", MustEncrypt("globex", "alias/secrets", "more"))), "more");
}

TEST_F(HierarchyTest, TenantsCreatedAfterAShreddingStillWork) {
  MustCreateTenant("acme");
  const KeyId id = IdOf("acme", "alias/data");
  hierarchy_.reset();
  auto kek = KekOf("acme", id);
  ASSERT_TRUE(kek.has_value());
  ASSERT_TRUE(token_->DestroyObject(kek->handle).ok());
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  MustCreateTenant("initech");
  const Bytes ct = MustEncrypt("initech", "alias/data", "fine");
  EXPECT_EQ(Text(Decrypt("initech", ct)), "fine");
}

}  // namespace
}  // namespace kmsd

namespace kmsd {
namespace {

// --- Lifecycle -----------------------------------------------------------------

constexpr int64_t kDay = 86400;

KeyState StateOf(KeyHierarchy& h, std::string_view tenant, std::string_view key) {
  auto info = h.DescribeKey(tenant, key);
  EXPECT_TRUE(info.has_value()) << info.error();
  return info ? info->state : KeyState::kEnabled;
}

TEST_F(HierarchyTest, DisabledKeyNeitherEncryptsNorDecryptsUntilEnabled) {
  MustCreateTenant("acme");
  const Bytes old = MustEncrypt("acme", "alias/data", "before");
  auto disabled = hierarchy_->SetKeyEnabled("acme", "alias/data", false);
  ASSERT_TRUE(disabled.has_value()) << disabled.error();
  EXPECT_FALSE(disabled->enabled);
  EXPECT_EQ(disabled->state, KeyState::kDisabled);
  EXPECT_FALSE(disabled->deletion_date.has_value());
  EXPECT_EQ(KeyStateName(disabled->state), "disabled");

  auto encrypt = hierarchy_->Encrypt("acme", "data-encryption-key", AsBytes("x"), {});
  ASSERT_EQ(CodeOf(encrypt), Code::kKeyDisabled);
  EXPECT_THAT(encrypt.error().message(), HasSubstr("'data-encryption-key' is disabled"));
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyDisabled);
  // Other keys of the tenant are unaffected; disabling twice is a no-op.
  EXPECT_EQ(Text(Decrypt("acme", MustEncrypt("acme", "alias/secrets", "s"))), "s");
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/data", false)), Code::kOk);

  Reopen();  // durable
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "alias/data"), KeyState::kDisabled);
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyDisabled);

  auto enabled = hierarchy_->SetKeyEnabled("acme", "alias/data", true);
  ASSERT_TRUE(enabled.has_value()) << enabled.error();
  EXPECT_EQ(enabled->state, KeyState::kEnabled);
  EXPECT_EQ(Text(Decrypt("acme", old)), "before");
  EXPECT_EQ(Text(Decrypt("acme", MustEncrypt("acme", "alias/data", "after"))), "after");
}

TEST_F(HierarchyTest, SetKeyEnabledRejectsUnknownKeysAndFailedWrites) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "nope", false)), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/nope", false)), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "Bad Name", false)), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("globex", "alias/data", false)), Code::kNotFound);
  store_->fail_lifecycle = true;
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/data", false)), Code::kInternal);
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "alias/data"), KeyState::kEnabled);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 7 * kDay)),
            Code::kInternal);
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "alias/data"), KeyState::kEnabled);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleTenantDeletion("acme", 7 * kDay)), Code::kInternal);
  EXPECT_EQ(CodeOf(hierarchy_->CheckNotPendingDeletion("acme")), Code::kOk);
}

TEST_F(HierarchyTest, KeyPendingDeletionRefusesEveryUse) {
  MustCreateTenant("acme");
  ASSERT_TRUE(hierarchy_->CreateKey("acme", "spare", "").has_value());
  const Bytes old = MustEncrypt("acme", "alias/data", "old");
  clock_.Advance(100);
  auto scheduled = hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 10 * kDay);
  ASSERT_TRUE(scheduled.has_value()) << scheduled.error();
  EXPECT_EQ(scheduled->state, KeyState::kPendingDeletion);
  EXPECT_EQ(KeyStateName(scheduled->state), "pending_deletion");
  EXPECT_FALSE(scheduled->enabled);
  EXPECT_EQ(scheduled->deletion_date, kStart + 100 + 10 * kDay);

  auto encrypt = hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {});
  ASSERT_EQ(CodeOf(encrypt), Code::kKeyPendingDeletion);
  EXPECT_THAT(encrypt.error().message(), HasSubstr("'data-encryption-key' is pending deletion"));
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/new", "data-encryption-key")),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/secrets", "data-encryption-key")),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/data", true)),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/data", false)),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 10 * kDay)),
            Code::kKeyPendingDeletion);
  // The alias can still be moved away, and the key described and listed.
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/data", "spare")), Code::kOk);
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "data-encryption-key"), KeyState::kPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ListVersions("acme", "data-encryption-key")), Code::kOk);

  // The window ending changes nothing yet: the key stays unusable.
  clock_.Advance(11 * kDay);
  Reopen();
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "data-encryption-key"), KeyState::kPendingDeletion);
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyPendingDeletion);
}

TEST_F(HierarchyTest, CancelKeyDeletionLeavesTheKeyDisabled) {
  MustCreateTenant("acme");
  const Bytes old = MustEncrypt("acme", "alias/data", "old");
  auto not_pending = hierarchy_->CancelKeyDeletion("acme", "alias/data");
  ASSERT_EQ(CodeOf(not_pending), Code::kInvalidArgument);
  EXPECT_THAT(not_pending.error().message(), HasSubstr("is not pending deletion"));
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 30 * kDay).has_value());
  Reopen();
  auto cancelled = hierarchy_->CancelKeyDeletion("acme", "alias/data");
  ASSERT_TRUE(cancelled.has_value()) << cancelled.error();
  EXPECT_EQ(cancelled->state, KeyState::kDisabled);
  EXPECT_FALSE(cancelled->deletion_date.has_value());
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyDisabled);
  EXPECT_EQ(CodeOf(hierarchy_->CancelKeyDeletion("acme", "alias/data")), Code::kInvalidArgument);
  Reopen();
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "alias/data"), KeyState::kDisabled);
  ASSERT_TRUE(hierarchy_->SetKeyEnabled("acme", "alias/data", true).has_value());
  EXPECT_EQ(Text(Decrypt("acme", old)), "old");
}

TEST_F(HierarchyTest, PendingWindowMustBeSevenToThirtyDays) {
  MustCreateTenant("acme");
  for (int64_t bad : {int64_t{0}, int64_t{-1}, 7 * kDay - 1, 30 * kDay + 1}) {
    auto key = hierarchy_->ScheduleKeyDeletion("acme", "alias/data", bad);
    ASSERT_EQ(CodeOf(key), Code::kInvalidArgument) << bad;
    EXPECT_THAT(key.error().message(), HasSubstr("604800 to 2592000 seconds"));
    EXPECT_EQ(CodeOf(hierarchy_->ScheduleTenantDeletion("acme", bad)), Code::kInvalidArgument);
  }
  EXPECT_EQ(StateOf(*hierarchy_, "acme", "alias/data"), KeyState::kEnabled);
  EXPECT_EQ(CodeOf(hierarchy_->CheckNotPendingDeletion("acme")), Code::kOk);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 7 * kDay)), Code::kOk);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/secrets", 30 * kDay)), Code::kOk);
}

TEST_F(HierarchyTest, ALoweredMinimumAcceptsShortWindows) {
  lifecycle_.min_pending_window_seconds = 2;
  Reopen();
  EXPECT_EQ(hierarchy_->lifecycle().min_pending_window_seconds, 2);
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 1)),
            Code::kInvalidArgument);
  auto key = hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 2);
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_EQ(key->deletion_date, kStart + 2);
}

TEST_F(HierarchyTest, OpenRejectsAMinimumWindowOutOfRange) {
  for (int64_t bad : {int64_t{0}, 7 * kDay + 1}) {
    auto store = OpenSqliteKeyStore(dir_ / "other.db");
    ASSERT_TRUE(store.has_value());
    auto opened = KeyHierarchy::Open(*token_, std::move(*store), clock_, {bad});
    EXPECT_EQ(CodeOf(opened), Code::kInvalidArgument) << bad;
  }
}

TEST_F(HierarchyTest, TenantPendingDeletionServesNothingUntilCancelled) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  const Bytes old = MustEncrypt("acme", "alias/data", "old");
  auto scheduled = hierarchy_->ScheduleTenantDeletion("acme", 7 * kDay);
  ASSERT_TRUE(scheduled.has_value()) << scheduled.error();
  EXPECT_EQ(scheduled->deletion_date, kStart + 7 * kDay);

  auto check = hierarchy_->CheckNotPendingDeletion("acme");
  ASSERT_EQ(CodeOf(check), Code::kKeyPendingDeletion);
  EXPECT_THAT(check.message(), HasSubstr("tenant 'acme' is pending deletion"));
  EXPECT_EQ(CodeOf(hierarchy_->CheckNotPendingDeletion("initech")), Code::kOk);  // left to the op
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {})),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->CreateKey("acme", "k", "")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ListKeys("acme")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->RotateKey("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ListVersions("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->CreateAlias("acme", "alias/x", "secrets-key")),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->UpdateAlias("acme", "alias/data", "secrets-key")),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->DeleteAlias("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ListAliases("acme")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->SetKeyEnabled("acme", "alias/data", false)),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", 7 * kDay)),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->CancelKeyDeletion("acme", "alias/data")), Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->ScheduleTenantDeletion("acme", 7 * kDay)),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(hierarchy_->CreateTenant("acme")), Code::kAlreadyExists);
  // Another tenant is untouched.
  EXPECT_EQ(Text(Decrypt("globex", MustEncrypt("globex", "alias/data", "g"))), "g");

  Reopen();  // durable
  auto described = hierarchy_->DescribeTenant("acme");
  ASSERT_TRUE(described.has_value()) << described.error();
  EXPECT_EQ(described->deletion_date, kStart + 7 * kDay);
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyPendingDeletion);

  auto cancelled = hierarchy_->CancelTenantDeletion("acme");
  ASSERT_TRUE(cancelled.has_value()) << cancelled.error();
  EXPECT_FALSE(cancelled->deletion_date.has_value());
  EXPECT_EQ(CodeOf(hierarchy_->CancelTenantDeletion("acme")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->CancelTenantDeletion("initech")), Code::kNotFound);
  EXPECT_EQ(Text(Decrypt("acme", old)), "old");  // its keys kept their states
  Reopen();
  EXPECT_FALSE(hierarchy_->DescribeTenant("acme")->deletion_date.has_value());
}

}  // namespace
}  // namespace kmsd

namespace kmsd {
namespace {

// --- Crypto-shredding ------------------------------------------------------------

constexpr int64_t kWeek = 7 * 86400;

TEST_F(HierarchyTest, KeyWindowEndDestroysItsKekAndForgetsIt) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  const Bytes doomed = MustEncrypt("acme", "alias/data", "doomed");
  const Bytes kept = MustEncrypt("acme", "alias/secrets", "kept");
  const Bytes other = MustEncrypt("globex", "alias/data", "other");
  const KeyId id = IdOf("acme", "alias/data");
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", kWeek).has_value());

  clock_.Advance(kWeek - 1);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 0u);  // not yet
  ASSERT_TRUE(KekOf("acme", id).has_value());

  clock_.Advance(1);
  const DueWorkReport report = hierarchy_->RunDueWork();
  EXPECT_EQ(report.keys_shredded, 1u);
  EXPECT_EQ(report.token_objects_destroyed, 1u);
  EXPECT_FALSE(KekOf("acme", id).has_value());
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "data-encryption-key")), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "alias/data")), Code::kNotFound);  // alias gone
  EXPECT_EQ(CodeOf(Decrypt("acme", doomed)), Code::kInvalidCiphertext);
  EXPECT_EQ(hierarchy_->DescribeTenant("acme")->key_count, 2u);
  EXPECT_EQ(Text(Decrypt("acme", kept)), "kept");
  EXPECT_EQ(Text(Decrypt("globex", other)), "other");
  // The keystore forgot it too, and nothing is left queued.
  const KeyStoreSnapshot snapshot = Snapshot();
  EXPECT_TRUE(snapshot.token_objects_to_destroy.empty());
  for (const auto& key : snapshot.keys) EXPECT_NE(key.id, id);
  for (const auto& version : snapshot.versions) EXPECT_NE(version.key_id, id);
  // The name can be used again, by a new key with a new KEK.
  EXPECT_TRUE(hierarchy_->CreateKey("acme", "data-encryption-key", "").has_value());
  EXPECT_EQ(CodeOf(Decrypt("acme", doomed)), Code::kInvalidCiphertext);
  Reopen();
  EXPECT_EQ(Text(Decrypt("acme", kept)), "kept");
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 0u);
}

TEST_F(HierarchyTest, AKeyWindowEndingInsideAPendingTenantStillShredsTheKey) {
  MustCreateTenant("acme");
  const KeyId id = IdOf("acme", "alias/data");
  ASSERT_TRUE(hierarchy_->SetRotationPeriod("acme", "alias/secrets", kDay).has_value());
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", kWeek).has_value());
  ASSERT_TRUE(hierarchy_->ScheduleTenantDeletion("acme", 30 * kDay).has_value());
  clock_.Advance(kWeek);
  const DueWorkReport report = hierarchy_->RunDueWork();
  EXPECT_EQ(report.keys_shredded, 1u);
  EXPECT_EQ(report.keys_rotated, 0u);  // the pending tenant's keys do not rotate
  EXPECT_FALSE(KekOf("acme", id).has_value());
  ASSERT_TRUE(hierarchy_->CancelTenantDeletion("acme").has_value());
  EXPECT_EQ(hierarchy_->DescribeTenant("acme")->key_count, 2u);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 1u);  // overdue, now that it serves again
}

TEST_F(HierarchyTest, OldKeystoreCopyCannotBringAShreddedKeyBack) {
  MustCreateTenant("acme");
  ASSERT_TRUE(hierarchy_->CreateKey("acme", "billing", "").has_value());
  const Bytes doomed = MustEncrypt("acme", "billing", "doomed");
  const Bytes kept = MustEncrypt("acme", "alias/data", "kept");
  // One copy from before the deletion was scheduled, one from during the window.
  const std::string before = dir_ / "before.db";
  const std::string during = dir_ / "during.db";
  ASSERT_TRUE(hierarchy_->BackupStore(before).has_value());
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("acme", "billing", kWeek).has_value());
  ASSERT_TRUE(hierarchy_->BackupStore(during).has_value());
  clock_.Advance(kWeek);
  ASSERT_EQ(hierarchy_->RunDueWork().keys_shredded, 1u);

  for (const std::string& copy : {before, during}) {
    SCOPED_TRACE(copy);
    hierarchy_.reset();
    ASSERT_TRUE(RestoreSqliteKeyStore(copy, dir_ / "keystore.db").has_value());
    ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
    // The copy from during the window says the key is pending deletion; the
    // older one thinks it enabled, but the token no longer has its KEK.
    auto decrypt = Decrypt("acme", doomed);
    ASSERT_FALSE(decrypt.has_value());
    if (copy == before) {
      ASSERT_EQ(CodeOf(decrypt), Code::kNotFound);
      EXPECT_THAT(decrypt.error().message(), HasSubstr("shredded"));
      auto enabled = hierarchy_->Encrypt("acme", "billing", AsBytes("x"), {});
      EXPECT_EQ(CodeOf(enabled), Code::kNotFound);
    } else {
      EXPECT_EQ(CodeOf(decrypt), Code::kKeyPendingDeletion);
    }
    EXPECT_EQ(Text(Decrypt("acme", kept)), "kept");
    EXPECT_EQ(Text(Decrypt("acme", MustEncrypt("acme", "alias/secrets", "new"))), "new");
  }
  // The copy from during the window still has the key pending: its window is
  // over, so the next round forgets it again.
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 1u);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeKey("acme", "billing")), Code::kNotFound);
}

TEST_F(HierarchyTest, TenantWindowEndShredsEveryKeyOfThatTenantOnly) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  ASSERT_TRUE(hierarchy_->CreateKey("acme", "billing", "").has_value());
  const Bytes a1 = MustEncrypt("acme", "alias/data", "a1");
  const Bytes a2 = MustEncrypt("acme", "billing", "a2");
  const Bytes g = MustEncrypt("globex", "alias/data", "g");
  const std::string copy = dir_ / "copy.db";
  ASSERT_TRUE(hierarchy_->BackupStore(copy).has_value());
  ASSERT_EQ(TokenObjectsOf("acme"), 4u);
  ASSERT_TRUE(hierarchy_->ScheduleTenantDeletion("acme", kWeek).has_value());
  clock_.Advance(kWeek);
  const DueWorkReport report = hierarchy_->RunDueWork();
  EXPECT_EQ(report.tenants_shredded, 1u);
  EXPECT_EQ(report.token_objects_destroyed, 4u);
  EXPECT_EQ(TokenObjectsOf("acme"), 0u);
  EXPECT_EQ(CodeOf(hierarchy_->DescribeTenant("acme")), Code::kNotFound);
  EXPECT_EQ(hierarchy_->TenantCount(), 1u);
  EXPECT_EQ(Text(Decrypt("globex", g)), "g");

  hierarchy_.reset();
  ASSERT_TRUE(RestoreSqliteKeyStore(copy, dir_ / "keystore.db").has_value());
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  EXPECT_EQ(CodeOf(Decrypt("acme", a1)), Code::kNotFound);
  EXPECT_EQ(CodeOf(Decrypt("acme", a2)), Code::kNotFound);
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/secrets", AsBytes("x"), {})),
            Code::kNotFound);
  EXPECT_EQ(Text(Decrypt("globex", g)), "g");
}

TEST_F(HierarchyTest, ShreddingInterruptedAfterTheKeystoreCommitFinishesAtStart) {
  MustCreateTenant("acme");
  const KeyId id = IdOf("acme", "alias/data");
  const std::string label = KekOf("acme", id)->label;
  // What a crash between the keystore transaction and C_DestroyObject leaves.
  hierarchy_.reset();
  {
    auto store = OpenSqliteKeyStore(dir_ / "keystore.db");
    ASSERT_TRUE(store.has_value());
    ASSERT_TRUE((*store)->ShredKey(id, {label}, kStart).ok());
  }
  ASSERT_TRUE(KekOf("acme", id).has_value());
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  EXPECT_FALSE(KekOf("acme", id).has_value());
  EXPECT_TRUE(Snapshot().token_objects_to_destroy.empty());
  EXPECT_EQ(hierarchy_->DescribeTenant("acme")->key_count, 2u);
}

TEST_F(HierarchyTest, FailedShredWritesAreRetried) {
  MustCreateTenant("acme");
  const KeyId id = IdOf("acme", "alias/data");
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("acme", "alias/data", kWeek).has_value());
  clock_.Advance(kWeek);
  store_->fail_shred = true;
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 0u);
  EXPECT_TRUE(KekOf("acme", id).has_value());  // nothing destroyed before the commit
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "data-encryption-key")->state,
            KeyState::kPendingDeletion);
  store_->fail_shred = false;
  store_->fail_dequeue = true;
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 1u);
  EXPECT_FALSE(KekOf("acme", id).has_value());
  EXPECT_EQ(Snapshot().token_objects_to_destroy.size(), 1u);  // still queued
  store_->fail_dequeue = false;
  hierarchy_->RunDueWork();
  EXPECT_TRUE(Snapshot().token_objects_to_destroy.empty());
}

// --- Rotation and minimum decryption version -------------------------------------

TEST_F(HierarchyTest, RotationPeriodAddsAVersionWhenDueOnceAfterDowntime) {
  MustCreateTenant("acme");
  EXPECT_EQ(CodeOf(hierarchy_->SetRotationPeriod("acme", "alias/data", 3600)),
            Code::kInvalidArgument);  // below one day
  EXPECT_EQ(CodeOf(hierarchy_->SetRotationPeriod("acme", "alias/data", 3651 * kDay)),
            Code::kInvalidArgument);
  auto set = hierarchy_->SetRotationPeriod("acme", "alias/data", 90 * kDay);
  ASSERT_TRUE(set.has_value()) << set.error();
  EXPECT_EQ(set->rotation_period_seconds, 90 * kDay);
  EXPECT_EQ(set->next_rotation_at, kStart + 90 * kDay);
  const Bytes v1 = MustEncrypt("acme", "alias/data", "v1");

  clock_.Advance(90 * kDay - 1);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 0u);
  clock_.Advance(1);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 1u);
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/data")->latest_version, 2u);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 0u);

  // Down for a year: one rotation at start, not four.
  Reopen();
  clock_.Advance(365 * kDay);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 1u);
  auto info = hierarchy_->DescribeKey("acme", "alias/data");
  EXPECT_EQ(info->latest_version, 3u);
  EXPECT_EQ(info->next_rotation_at, clock_.NowSeconds() + 90 * kDay);
  EXPECT_EQ(Text(Decrypt("acme", v1)), "v1");

  // A disabled key waits; turning rotation off stops it.
  ASSERT_TRUE(hierarchy_->SetKeyEnabled("acme", "alias/data", false).has_value());
  clock_.Advance(100 * kDay);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 0u);
  ASSERT_TRUE(hierarchy_->SetRotationPeriod("acme", "alias/data", std::nullopt).has_value());
  ASSERT_TRUE(hierarchy_->SetKeyEnabled("acme", "alias/data", true).has_value());
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 0u);
  Reopen();
  EXPECT_FALSE(hierarchy_->DescribeKey("acme", "alias/data")->rotation_period_seconds);
}

// A tenant policy's key_rotation_days: every key of the tenant rotates at
// least that often, with or without a period of its own; a shorter period
// of its own still holds.
TEST_F(HierarchyTest, ATenantsRotationCeilingRotatesEveryKeyOfIt) {
  MustCreateTenant("acme");
  MustCreateTenant("globex");
  ASSERT_TRUE(hierarchy_->SetRotationPeriod("acme", "alias/secrets", 10 * kDay).has_value());
  ASSERT_TRUE(hierarchy_->SetRotationCeiling("acme", 30 * kDay).ok());
  EXPECT_EQ(hierarchy_->SetRotationCeiling("initech", 30 * kDay).code(), Code::kNotFound);
  auto data = hierarchy_->DescribeKey("acme", "alias/data");
  EXPECT_FALSE(data->rotation_period_seconds);
  EXPECT_EQ(data->next_rotation_at, kStart + 30 * kDay);
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/secrets")->next_rotation_at, kStart + 10 * kDay);
  clock_.Advance(10 * kDay);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 1u);  // secrets, by its own period
  clock_.Advance(20 * kDay);
  // The other two keys of acme by the ceiling, secrets by its own period
  // again; globex has no ceiling.
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 3u);
  EXPECT_EQ(hierarchy_->DescribeKey("acme", "alias/data")->latest_version, 2u);
  EXPECT_EQ(hierarchy_->DescribeKey("globex", "alias/data")->latest_version, 1u);
  // Lifted: no more rotation but by a key's own period.
  ASSERT_TRUE(hierarchy_->SetRotationCeiling("acme", std::nullopt).ok());
  clock_.Advance(100 * kDay);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_rotated, 1u);  // secrets again
}

TEST_F(HierarchyTest, MinimumDecryptionVersionCanBeRaisedAndLowered) {
  MustCreateTenant("acme");
  const Bytes v1 = MustEncrypt("acme", "alias/data", "v1");
  ASSERT_TRUE(hierarchy_->RotateKey("acme", "alias/data").has_value());
  const Bytes v2 = MustEncrypt("acme", "alias/data", "v2");
  EXPECT_EQ(CodeOf(hierarchy_->SetMinDecryptionVersion("acme", "alias/data", 0)),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(hierarchy_->SetMinDecryptionVersion("acme", "alias/data", 3)),
            Code::kInvalidArgument);
  auto raised = hierarchy_->SetMinDecryptionVersion("acme", "alias/data", 2);
  ASSERT_TRUE(raised.has_value()) << raised.error();
  EXPECT_EQ(raised->min_decryption_version, 2u);
  auto refused = Decrypt("acme", v1);
  ASSERT_EQ(CodeOf(refused), Code::kKeyDisabled);
  EXPECT_THAT(refused.error().message(), HasSubstr("minimum decryption version 2"));
  EXPECT_EQ(Text(Decrypt("acme", v2)), "v2");
  Reopen();  // durable
  EXPECT_EQ(CodeOf(Decrypt("acme", v1)), Code::kKeyDisabled);
  ASSERT_TRUE(hierarchy_->SetMinDecryptionVersion("acme", "alias/data", 1).has_value());
  EXPECT_EQ(Text(Decrypt("acme", v1)), "v1");
}

// --- Nonce limits ------------------------------------------------------------------

TEST_F(HierarchyTest, VersionRotatesWhenItReachesItsEncryptionLimit) {
  lifecycle_.max_encryptions_per_version = 5;
  Reopen();
  MustCreateTenant("acme");
  std::vector<Bytes> ciphertexts;
  for (int i = 0; i < 5; ++i) ciphertexts.push_back(MustEncrypt("acme", "alias/data", "x"));
  for (const Bytes& ct : ciphertexts) EXPECT_EQ(ParseCiphertext(ct)->version, 1u);
  auto sixth = hierarchy_->Encrypt("acme", "alias/data", AsBytes("y"), {});
  ASSERT_TRUE(sixth.has_value()) << sixth.error();
  EXPECT_EQ(sixth->version, 2u);
  auto versions = hierarchy_->ListVersions("acme", "alias/data");
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].encryptions, 5u);
  EXPECT_EQ((*versions)[1].encryptions, 1u);
  for (const Bytes& ct : ciphertexts) EXPECT_EQ(Text(Decrypt("acme", ct)), "x");
  // The counts are reserved in the keystore before use and survive a restart.
  Reopen();
  versions = hierarchy_->ListVersions("acme", "alias/data");
  EXPECT_EQ((*versions)[0].encryptions, 5u);
  EXPECT_EQ((*versions)[1].encryptions, 1u);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(hierarchy_->Encrypt("acme", "alias/data", AsBytes("z"), {})->version, 2u);
  EXPECT_EQ(hierarchy_->Encrypt("acme", "alias/data", AsBytes("z"), {})->version, 3u);
}

TEST_F(HierarchyTest, EncryptionCountsAreReservedInBlocksAndNeverUnderCount) {
  lifecycle_.max_encryptions_per_version = 6400;  // blocks of 100
  Reopen();
  MustCreateTenant("acme");
  MustEncrypt("acme", "alias/data", "x");
  const KeyId id = IdOf("acme", "alias/data");
  auto reserved_of = [&] {
    for (const auto& v : Snapshot().versions) {
      if (v.key_id == id) return v.reserved_encryptions;
    }
    return uint64_t{0};
  };
  EXPECT_EQ(reserved_of(), 100u);
  for (int i = 0; i < 100; ++i) MustEncrypt("acme", "alias/data", "x");
  EXPECT_EQ(reserved_of(), 200u);
  EXPECT_EQ(hierarchy_->ListVersions("acme", "alias/data")->front().encryptions, 101u);
  Reopen();  // as after a crash: everything reserved counts as used
  EXPECT_EQ(hierarchy_->ListVersions("acme", "alias/data")->front().encryptions, 200u);

  // No reservation, no encryption: use up the reserved block first.
  for (int i = 0; i < 100; ++i) MustEncrypt("acme", "alias/data", "x");
  store_->fail_reserve = true;
  EXPECT_EQ(CodeOf(hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {})), Code::kInternal);
  store_->fail_reserve = false;
  EXPECT_TRUE(hierarchy_->Encrypt("acme", "alias/data", AsBytes("x"), {}).has_value());
}

TEST_F(HierarchyTest, OpenRefusesBadLifecycleOptions) {
  hierarchy_.reset();
  auto store = OpenSqliteKeyStore(dir_ / "keystore.db");
  ASSERT_TRUE(store.has_value());
  LifecycleOptions bad;
  bad.max_encryptions_per_version = 0;
  EXPECT_EQ(CodeOf(KeyHierarchy::Open(*token_, std::move(*store), clock_, bad)),
            Code::kInvalidArgument);
  store = OpenSqliteKeyStore(dir_ / "keystore.db");
  bad = {};
  bad.max_encryptions_per_version = kMaxEncryptionsPerVersion + 1;
  EXPECT_EQ(CodeOf(KeyHierarchy::Open(*token_, std::move(*store), clock_, bad)),
            Code::kInvalidArgument);
  store = OpenSqliteKeyStore(dir_ / "keystore.db");
  bad = {};
  bad.min_rotation_period_seconds = 0;
  EXPECT_EQ(CodeOf(KeyHierarchy::Open(*token_, std::move(*store), clock_, bad)),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace kmsd
