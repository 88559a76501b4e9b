#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/esdk/cache.h"
#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"

namespace kmsd::esdk {
namespace {

// A raw AES keyring that counts its calls and can be slow or failing.
class CountingKeyring final : public Keyring {
 public:
  CountingKeyring()
      : inner_(std::move(*RawAesKeyring::Create("ns", "k", SecretBuffer::CopyOf(Bytes(32, 3))))) {}
  Status OnEncrypt(EncryptionMaterials& materials) override {
    ++encrypts;
    std::this_thread::sleep_for(delay);
    if (fail) return Status(Code::kUnavailable, "kmsd is away");
    return inner_->OnEncrypt(materials);
  }
  Status OnDecrypt(DecryptionMaterials& materials,
                   std::span<const EncryptedDataKey> edks) override {
    ++decrypts;
    std::this_thread::sleep_for(delay);
    return inner_->OnDecrypt(materials, edks);
  }
  std::atomic<int> encrypts{0};
  std::atomic<int> decrypts{0};
  std::chrono::milliseconds delay{0};
  std::atomic<bool> fail{false};

 private:
  std::unique_ptr<RawAesKeyring> inner_;
};

struct EsdkCacheTest : ::testing::Test {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  CountingKeyring keyring;
  KeyringMaterials direct{keyring};

  std::unique_ptr<DataKeyCache> MakeCache(CacheLimits limits) {
    return std::make_unique<DataKeyCache>(limits, [this] { return now; });
  }
  static Result<Bytes> Encrypt(MaterialsManager& materials, size_t size,
                               EncryptionContext context = {{"t", "a"}},
                               uint16_t suite = kCommittingSuite) {
    return EncryptMessage(materials,
                          {.suite_id = suite,
                           .frame_length = 4096,
                           .context = std::move(context),
                           .plaintext_bytes = std::nullopt},
                          Bytes(size, 0x61));
  }
};

TEST_F(EsdkCacheTest, ReusesADataKeyWithinItsMessageAndByteLimits) {
  auto cache = MakeCache({.max_age = std::chrono::minutes(5),
                          .max_messages = 3,
                          .max_bytes = 1 << 20,
                          .capacity = 10});
  CachingMaterials cached(direct, *cache, "p");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Encrypt(cached, 10).has_value());
  EXPECT_EQ(keyring.encrypts, 4);  // 3 + 3 + 3 + 1
  // Every message still decrypts, and carries the same EDK as its neighbours.
  auto message = Encrypt(cached, 10);
  EXPECT_EQ(*DecryptMessage(direct, {}, *message), Bytes(10, 0x61));

  keyring.encrypts = 0;
  auto by_bytes = MakeCache(
      {.max_age = std::chrono::minutes(5), .max_messages = 100, .max_bytes = 100, .capacity = 10});
  CachingMaterials cached_bytes(direct, *by_bytes, "p");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Encrypt(cached_bytes, 40).has_value());
  EXPECT_EQ(keyring.encrypts, 5);  // two 40-byte messages per 100 bytes
  keyring.encrypts = 0;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Encrypt(cached_bytes, 150).has_value());
  EXPECT_EQ(keyring.encrypts, 3);  // over the limit alone: never cached
}

TEST_F(EsdkCacheTest, EntriesAreKeyedByPartitionSuiteAndContext) {
  auto cache = MakeCache({});
  CachingMaterials first(direct, *cache, "kmsd:acme/k");
  CachingMaterials second(direct, *cache, "kmsd:globex/k");
  ASSERT_TRUE(Encrypt(first, 1, {{"t", "a"}}).has_value());
  ASSERT_TRUE(Encrypt(first, 1, {{"t", "a"}}).has_value());
  EXPECT_EQ(keyring.encrypts, 1);
  ASSERT_TRUE(Encrypt(first, 1, {{"t", "b"}}).has_value());
  ASSERT_TRUE(Encrypt(second, 1, {{"t", "a"}}).has_value());
  ASSERT_TRUE(Encrypt(first, 1, {{"t", "a"}}, kCommittingSignedSuite).has_value());
  EXPECT_EQ(keyring.encrypts, 4);
  EXPECT_EQ(cache->size(), 4u);
}

TEST_F(EsdkCacheTest, ExpiresEntriesAndEvictsTheLeastRecentlyUsed) {
  auto cache = MakeCache({.max_age = std::chrono::seconds(60),
                          .max_messages = 1000,
                          .max_bytes = 1 << 20,
                          .capacity = 2});
  CachingMaterials cached(direct, *cache, "p");
  ASSERT_TRUE(Encrypt(cached, 1).has_value());
  now += std::chrono::seconds(59);
  ASSERT_TRUE(Encrypt(cached, 1).has_value());
  EXPECT_EQ(keyring.encrypts, 1);
  now += std::chrono::seconds(2);
  ASSERT_TRUE(Encrypt(cached, 1).has_value());
  EXPECT_EQ(keyring.encrypts, 2);
  // Capacity 2: a, b, c evicts a.
  ASSERT_TRUE(Encrypt(cached, 1, {{"t", "b"}}).has_value());
  ASSERT_TRUE(Encrypt(cached, 1, {{"t", "c"}}).has_value());
  EXPECT_EQ(cache->size(), 2u);
  ASSERT_TRUE(Encrypt(cached, 1, {{"t", "c"}}).has_value());
  EXPECT_EQ(keyring.encrypts, 4);
  ASSERT_TRUE(Encrypt(cached, 1, {{"t", "a"}}).has_value());
  EXPECT_EQ(keyring.encrypts, 5);
  cache->Clear();
  EXPECT_EQ(cache->size(), 0u);
}

TEST_F(EsdkCacheTest, AStreamOfUnknownSizeBypassesTheCache) {
  auto cache = MakeCache({});
  CachingMaterials cached(direct, *cache, "p");
  for (int i = 0; i < 3; ++i) {
    auto encryptor = Encryptor::Start(cached, {}, [](auto) { return OkStatus(); });
    ASSERT_TRUE(encryptor.has_value());
    ASSERT_TRUE((*encryptor)->Finish().ok());
  }
  EXPECT_EQ(keyring.encrypts, 3);
  EXPECT_EQ(cache->size(), 0u);
}

TEST_F(EsdkCacheTest, CachesRecoveredDataKeysForTheSameEdks) {
  auto cache = MakeCache({});
  CachingMaterials cached(direct, *cache, "p");
  auto message = Encrypt(direct, 100);
  auto other = Encrypt(direct, 100);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(DecryptMessage(cached, {}, *message).has_value());
  EXPECT_EQ(keyring.decrypts, 1);
  ASSERT_TRUE(DecryptMessage(cached, {}, *other).has_value());
  EXPECT_EQ(keyring.decrypts, 2);
}

TEST_F(EsdkCacheTest, SignedMessagesFromOneEntryEachVerify) {
  auto cache = MakeCache({});
  CachingMaterials cached(direct, *cache, "p");
  Header first, second;
  auto a = Encrypt(cached, 10, {}, kCommittingSignedSuite);
  auto b = Encrypt(cached, 10, {}, kCommittingSignedSuite);
  ASSERT_TRUE(DecryptMessage(direct, {}, *a, &first).has_value());
  ASSERT_TRUE(DecryptMessage(direct, {}, *b, &second).has_value());
  EXPECT_EQ(first.context, second.context);  // the same verification key
  EXPECT_NE(first.message_id, second.message_id);
  EXPECT_EQ(keyring.encrypts, 1);
}

// Beyond the SDKs: a burst of misses for one entry makes one call.
TEST_F(EsdkCacheTest, ConcurrentMissesMergeIntoOneCall) {
  auto cache = MakeCache({.max_age = std::chrono::minutes(5),
                          .max_messages = 1000,
                          .max_bytes = 1 << 20,
                          .capacity = 10});
  CachingMaterials cached(direct, *cache, "p");
  keyring.delay = std::chrono::milliseconds(100);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if (Encrypt(cached, 10).has_value()) ++ok;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, 16);
  EXPECT_EQ(keyring.encrypts, 1);

  // With 4 messages per data key, 16 messages take 4 calls, merged or not.
  auto small = MakeCache({.max_age = std::chrono::minutes(5),
                          .max_messages = 4,
                          .max_bytes = 1 << 20,
                          .capacity = 10});
  CachingMaterials cached_small(direct, *small, "p");
  keyring.encrypts = 0;
  threads.clear();
  for (int i = 0; i < 16; ++i) threads.emplace_back([&] { (void)Encrypt(cached_small, 10); });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(keyring.encrypts, 4);
}

TEST_F(EsdkCacheTest, AFailedMissFailsEveryWaiterAndIsRetriedLater) {
  auto cache = MakeCache({});
  CachingMaterials cached(direct, *cache, "p");
  keyring.delay = std::chrono::milliseconds(100);
  keyring.fail = true;
  std::vector<std::thread> threads;
  std::atomic<int> unavailable{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto result = Encrypt(cached, 10);
      if (!result.has_value() && result.error().code() == Code::kUnavailable) ++unavailable;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(unavailable, 8);
  EXPECT_LT(keyring.encrypts, 8);  // waiters shared the failure
  keyring.fail = false;
  keyring.delay = std::chrono::milliseconds(0);
  const int before = keyring.encrypts;
  ASSERT_TRUE(Encrypt(cached, 10).has_value());
  EXPECT_EQ(keyring.encrypts, before + 1);
}

// A keyring that throws still releases the callers waiting on it.
TEST_F(EsdkCacheTest, AThrowingMissReleasesItsWaiters) {
  struct Throwing final : Keyring {
    Status OnEncrypt(EncryptionMaterials&) override {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      throw std::runtime_error("keyring bug");
    }
    Status OnDecrypt(DecryptionMaterials&, std::span<const EncryptedDataKey>) override {
      return OkStatus();
    }
  } throwing;
  KeyringMaterials throwing_materials(throwing);
  auto cache = MakeCache({});
  CachingMaterials cached(throwing_materials, *cache, "p");
  std::atomic<int> thrown{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        if (!Encrypt(cached, 10).has_value()) ++failed;
      } catch (const std::runtime_error&) {
        ++thrown;
      }
    });
  }
  for (auto& thread : threads) thread.join();  // no thread waits forever
  EXPECT_GE(thrown, 1);
  EXPECT_EQ(thrown + failed, 4);
}

}  // namespace
}  // namespace kmsd::esdk
