// KeyStore::Apply (several changes in one transaction) and
// ReserveEncryptionRange (atomic nonce ranges, DESIGN.md invariant 6), on
// the SQLite store.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "keystore/store.h"
#include "tests/support/temp_dir.h"

namespace kmsd {
namespace {

KeyId IdNumber(int n) {
  KeyId id{};
  id[0] = 0xb0;
  id[15] = static_cast<uint8_t>(n);
  return id;
}

TenantRecord NewTenant(const std::string& name) {
  return {.name = name, .root_label = "", .created_at = 1700000000, .deletion_due_at = {}};
}

KeyRecord NewKey(const std::string& tenant, const std::string& name, int n) {
  // Built with append, not operator+: GCC 12 -O2 warns falsely (array-bounds).
  std::string kek_label = "tenants/";
  kek_label.append(tenant).append("/keys/").append(std::to_string(n));
  return {.id = IdNumber(n),
          .tenant = tenant,
          .name = name,
          .description = "",
          .created_at = 1700000000,
          .enabled = true,
          .deletion_due_at = {},
          .kek_label = std::move(kek_label),
          .rotation_period_seconds = {},
          .min_decryption_version = 1};
}

KeyVersionRecord FirstVersion(int n) {
  return {.key_id = IdNumber(n),
          .version = 1,
          .wrapped = Bytes(40, 0x5a),
          .created_at = 1700000000,
          .reserved_encryptions = 0};
}

AliasRecord NewAlias(const std::string& tenant, const std::string& name, int n) {
  return {.tenant = tenant,
          .name = name,
          .key_id = IdNumber(n),
          .created_at = 1700000000,
          .updated_at = 1700000000};
}

std::unique_ptr<KeyStore> MustOpen(const std::string& path) {
  auto store = OpenSqliteKeyStore(path);
  EXPECT_TRUE(store.has_value()) << store.error();
  return store ? std::move(*store) : nullptr;
}

class UnitOfWorkTest : public ::testing::Test {
 protected:
  // Tenant "acme" with key 1 ("orders") and alias/orders, as one unit.
  UnitOfWork Acme() {
    UnitOfWork unit;
    unit.Add(store_change::CreateTenant{NewTenant("acme")})
        .Add(store_change::CreateKey{NewKey("acme", "orders", 1), FirstVersion(1)})
        .Add(store_change::CreateAlias{NewAlias("acme", "alias/orders", 1)});
    return unit;
  }

  testing::TempDir dir_;
  std::string path_ = dir_ / "keystore.db";
};

TEST_F(UnitOfWorkTest, AppliesEveryChangeInOneTransaction) {
  auto store = MustOpen(path_);
  ASSERT_TRUE(store->Apply(Acme()).ok());
  UnitOfWork more;
  more.Add(store_change::SetKeyEnabled{IdNumber(1), false})
      .Add(store_change::SetRotationPeriod{IdNumber(1), 86400})
      .Add(store_change::DeleteAlias{"acme", "alias/orders"});
  ASSERT_TRUE(store->Apply(more).ok());
  auto snapshot = store->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error();
  ASSERT_EQ(snapshot->tenants.size(), 1u);
  ASSERT_EQ(snapshot->keys.size(), 1u);
  EXPECT_FALSE(snapshot->keys[0].enabled);
  EXPECT_EQ(snapshot->keys[0].rotation_period_seconds, 86400);
  EXPECT_EQ(snapshot->versions.size(), 1u);
  EXPECT_TRUE(snapshot->aliases.empty());
}

TEST_F(UnitOfWorkTest, AFailingChangeLeavesNothingOfTheUnit) {
  auto store = MustOpen(path_);
  UnitOfWork unit = Acme();
  // The last change fails (its key is not there): the tenant and key go too.
  unit.Add(store_change::CreateAlias{NewAlias("acme", "alias/other", 9)});
  EXPECT_EQ(store->Apply(unit).code(), Code::kNotFound);
  auto snapshot = store->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error();
  EXPECT_TRUE(snapshot->tenants.empty());
  EXPECT_TRUE(snapshot->keys.empty());
  EXPECT_TRUE(snapshot->versions.empty());
  // And the same unit without the bad change applies.
  EXPECT_TRUE(store->Apply(Acme()).ok());
}

TEST_F(UnitOfWorkTest, ReservationRangesFollowEachOther) {
  auto store = MustOpen(path_);
  ASSERT_TRUE(store->Apply(Acme()).ok());
  EXPECT_EQ(store->ReserveEncryptionRange(IdNumber(1), 1, 100), 100u);
  EXPECT_EQ(store->ReserveEncryptionRange(IdNumber(1), 1, 5), 105u);
  EXPECT_EQ(store->ReserveEncryptionRange(IdNumber(1), 2, 5).error().code(), Code::kNotFound);
  EXPECT_EQ(store->ReserveEncryptionRange(IdNumber(9), 1, 5).error().code(), Code::kNotFound);
  EXPECT_EQ(store->ReserveEncryptionRange(IdNumber(1), 1, 0).error().code(),
            Code::kInvalidArgument);
  auto snapshot = store->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error();
  EXPECT_EQ(snapshot->versions.at(0).reserved_encryptions, 105u);
}

// Two stores on one file stand for two daemons sharing a keystore: their
// ranges never overlap, and together they cover exactly what was reserved.
TEST_F(UnitOfWorkTest, TwoStoresSharingADatabaseNeverGetOverlappingRanges) {
  auto first = MustOpen(path_);
  ASSERT_TRUE(first->Apply(Acme()).ok());
  auto second = MustOpen(path_);
  ASSERT_NE(second, nullptr);
  constexpr int kRounds = 60;
  using Range = std::pair<uint64_t, uint64_t>;  // (start, end]
  auto reserve = [&](KeyStore* store, uint64_t count, std::vector<Range>* ranges) {
    for (int i = 0; i < kRounds; ++i) {
      auto end = store->ReserveEncryptionRange(IdNumber(1), 1, count);
      ASSERT_TRUE(end.has_value()) << end.error();
      ranges->emplace_back(*end - count, *end);
    }
  };
  std::vector<Range> ranges_a;
  std::vector<Range> ranges_b;
  std::thread a(reserve, first.get(), 7, &ranges_a);
  std::thread b(reserve, second.get(), 11, &ranges_b);
  a.join();
  b.join();
  std::vector<Range> all = ranges_a;
  all.insert(all.end(), ranges_b.begin(), ranges_b.end());
  std::sort(all.begin(), all.end());
  uint64_t covered = 0;
  for (const auto& [start, end] : all) {
    EXPECT_EQ(start, covered) << "a range overlaps another or leaves a gap";
    covered = end;
  }
  EXPECT_EQ(covered, uint64_t{kRounds} * (7 + 11));
  auto snapshot = first->LoadAll();
  ASSERT_TRUE(snapshot.has_value()) << snapshot.error();
  EXPECT_EQ(snapshot->versions.at(0).reserved_encryptions, covered);
}

}  // namespace
}  // namespace kmsd
