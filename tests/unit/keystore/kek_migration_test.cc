// KeyHierarchy's start-up migration of token objects made before hardening
// (keystore/kek_migration.cc), on a real SoftHSM2 token and SQLite keystore.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "keystore/internal/catalog.h"
#include "tests/unit/keystore/hierarchy_fixture.h"

namespace kmsd {
namespace {

using namespace hierarchy_testing;
using ::testing::HasSubstr;

struct LegacyCiphertext {
  std::string plaintext;
  Bytes ciphertext;
};

class KekMigrationTest : public HierarchyTest {
 protected:
  // A ciphertext made as kmsd makes them (docs/FORMATS.md), under `wrapped`
  // unwrapped with `source`.
  LegacyCiphertext Seal(pkcs11::ObjectHandle source, const KeyVersionRecord& version,
                        const std::string& plaintext) {
    auto key = token_->UnwrapAesKey(source, version.wrapped);
    EXPECT_TRUE(key.has_value()) << key.error();
    Iv iv{};
    iv[0] = static_cast<uint8_t>(version.version);
    Bytes out = BuildHeader(version.key_id, version.version, iv);
    const auto aad = BuildAad(std::span(out).first(kBoundHeaderSize), "old", {});
    auto sealed = token_->EncryptGcm(*key, iv, aad, AsBytes(plaintext));
    EXPECT_TRUE(sealed.has_value());
    out.insert(out.end(), sealed->begin(), sealed->end());
    (void)token_->DestroyObject(key->handle);
    return {plaintext, out};
  }

  KeyRecord Key(std::string name, std::string kek_label) {
    KeyRecord key;
    EXPECT_TRUE(token_->GenerateRandom(key.id).ok());
    key.tenant = "old";
    key.name = std::move(name);
    key.created_at = kStart;
    key.kek_label = std::move(kek_label);
    return key;
  }

  // Tenant "old" as kmsd made it before hardening: key "rooted" (schema 2,
  // two versions under an unhardened tenant root) and key "own" (an
  // unhardened KEK of its own), and an unhardened platform master key.
  std::vector<LegacyCiphertext> WriteLegacyTenant() {
    hierarchy_.reset();
    auto master = token_->FindTokenSecretKeysByLabel(kPlatformMasterKeyLabel);
    EXPECT_TRUE(master.has_value() && master->size() == 1);
    EXPECT_TRUE(token_->DestroyObject(master->front()).ok());
    EXPECT_TRUE(token_->TEST_CreateUnhardenedWrappingKey(kPlatformMasterKeyLabel).has_value());

    auto root = token_->TEST_CreateUnhardenedWrappingKey("tenants/old/root/01");
    KeyRecord rooted = Key("rooted", "");
    KeyRecord own = Key("own", KekLabel("old", {}));
    own.kek_label = KekLabel("old", own.id);
    auto kek = token_->TEST_CreateUnhardenedWrappingKey(own.kek_label);
    EXPECT_TRUE(root.has_value() && kek.has_value());
    std::vector<KeyVersionRecord> versions;
    for (auto [key, source, number] :
         {std::tuple{&rooted, *root, 1u}, {&rooted, *root, 2u}, {&own, *kek, 1u}}) {
      versions.push_back({key->id, number, token_->GenerateWrappedAesKey(source).value(), kStart});
    }
    std::vector<LegacyCiphertext> out = {Seal(*root, versions[0], "rooted v1"),
                                         Seal(*root, versions[1], "rooted v2"),
                                         Seal(*kek, versions[2], "own v1")};
    auto store = OpenSqliteKeyStore(dir_ / "keystore.db");
    EXPECT_TRUE(store.has_value());
    // Only versions 1 go in with the keys; version 2 is added after.
    EXPECT_TRUE((*store)
                    ->CreateTenant({"old", "tenants/old/root/01", kStart, std::nullopt},
                                   {rooted, own}, {versions[0], versions[2]}, {})
                    .ok());
    EXPECT_TRUE((*store)->AddKeyVersion(versions[1]).ok());
    rooted_ = rooted.id;
    own_ = own.id;
    return out;
  }

  void ExpectEveryTokenObjectHardened() {
    auto objects = token_->ListTokenSecretKeys();
    ASSERT_TRUE(objects.has_value());
    for (const auto& object : *objects) {
      EXPECT_EQ(token_->IsHardened(object.handle), true) << object.label;
    }
  }

  KeyId rooted_{};
  KeyId own_{};
};

TEST_F(KekMigrationTest, OpenMovesEveryKeyToAHardenedKekAndEveryCiphertextStillDecrypts) {
  const auto ciphertexts = WriteLegacyTenant();
  // A crash in an earlier attempt left a KEK under the next label.
  ASSERT_TRUE(token_->TEST_CreateUnhardenedWrappingKey(KekLabel("old", own_) + "/2").has_value());
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());

  EXPECT_EQ(TokenLabels(), (std::multiset<std::string>{
                               std::string(kPlatformMasterKeyLabel), std::string(kAuditLogKeyLabel),
                               std::string(kApiKeyHmacKeyLabel), KekLabel("old", rooted_) + "/2",
                               KekLabel("old", own_) + "/2"}));
  ExpectEveryTokenObjectHardened();
  const KeyStoreSnapshot snapshot = Snapshot();
  ASSERT_EQ(snapshot.tenants.size(), 1u);
  EXPECT_EQ(snapshot.tenants[0].root_label, "");
  EXPECT_TRUE(snapshot.token_objects_to_destroy.empty());
  for (const KeyRecord& key : snapshot.keys) {
    EXPECT_EQ(key.kek_label, KekLabel("old", key.id) + "/2");
  }
  for (const auto& [plaintext, ciphertext] : ciphertexts) {
    EXPECT_EQ(Text(Decrypt("old", ciphertext)), plaintext);
  }
  // New encryptions work, and a second start moves nothing.
  const Bytes fresh = MustEncrypt("old", "rooted", "after");
  const auto labels = TokenLabels();
  Reopen();
  EXPECT_EQ(TokenLabels(), labels);
  EXPECT_EQ(Text(Decrypt("old", fresh)), "after");
  EXPECT_EQ(Text(Decrypt("old", ciphertexts[0].ciphertext)), "rooted v1");
}

TEST_F(KekMigrationTest, AMovedKeyIsShreddedInTheTokenToo) {
  const auto ciphertexts = WriteLegacyTenant();
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  ASSERT_TRUE(hierarchy_->ScheduleKeyDeletion("old", "rooted", 7 * 86400).has_value());
  clock_.Advance(7 * 86400);
  EXPECT_EQ(hierarchy_->RunDueWork().keys_shredded, 1u);
  EXPECT_EQ(TokenLabels().count(KekLabel("old", rooted_) + "/2"), 0u);
  EXPECT_EQ(Text(Decrypt("old", ciphertexts[2].ciphertext)), "own v1");
  EXPECT_THAT(Text(Decrypt("old", ciphertexts[0].ciphertext)), HasSubstr("INVALID_CIPHERTEXT"));
}

TEST_F(KekMigrationTest, AFailedKeystoreWriteLeavesTheOldStateAndTheNextStartFinishes) {
  const auto ciphertexts = WriteLegacyTenant();
  const auto before = TokenLabels();
  auto inner = OpenSqliteKeyStore(dir_ / "keystore.db");
  ASSERT_TRUE(inner.has_value());
  auto store = std::make_unique<FlakyStore>(std::move(*inner));
  store->fail_replace_keks = true;
  auto failed = KeyHierarchy::Open(*token_, std::move(store), clock_, lifecycle_);
  ASSERT_EQ(CodeOf(failed), Code::kInternal);
  EXPECT_THAT(failed.error().message(), HasSubstr("cannot move keys to hardened KEKs"));
  // The platform master key was replaced; the tenant's objects are as they were.
  EXPECT_EQ(TokenLabels(), before);
  ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  ExpectEveryTokenObjectHardened();
  for (const auto& [plaintext, ciphertext] : ciphertexts) {
    EXPECT_EQ(Text(Decrypt("old", ciphertext)), plaintext);
  }
}

}  // namespace
}  // namespace kmsd
