// Shared set-up for KeyHierarchy tests: a real SoftHSM2 token and a real
// SQLite keystore behind a FlakyStore that can be told to fail a kind of
// change, and a fake clock. Test-only.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "keystore/hierarchy.h"
#include "keystore/store.h"
#include "pkcs11/module.h"
#include "pkcs11/token.h"
#include "protocol/clock.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_helpers.h"

namespace kmsd {
namespace hierarchy_testing {

// The plaintext, or the error spelled out so that a failure reads well.
inline std::string Text(const Result<std::string>& r) {
  return r.has_value() ? *r : "<error " + r.error().ToString() + ">";
}

constexpr int64_t kStart = 1700000000;

class FakeClock final : public Clock {
 public:
  int64_t NowSeconds() const override { return now_.load(); }
  void Advance(int64_t seconds) { now_ += seconds; }

 private:
  std::atomic<int64_t> now_{kStart};
};

// A real store that can be told to fail a kind of change.
class FlakyStore final : public KeyStore {
 public:
  explicit FlakyStore(std::unique_ptr<KeyStore> inner) : inner_(std::move(inner)) {}

  std::atomic<bool> fail_create_tenant{false};
  std::atomic<bool> fail_create_key{false};
  std::atomic<bool> fail_add_version{false};
  std::atomic<bool> fail_aliases{false};
  std::atomic<bool> fail_lifecycle{false};
  std::atomic<bool> fail_reserve{false};
  std::atomic<bool> fail_shred{false};
  std::atomic<bool> fail_dequeue{false};
  std::atomic<bool> fail_replace_keks{false};
  std::atomic<bool> fail_access{false};

  Result<KeyStoreSnapshot> LoadAll() override { return inner_->LoadAll(); }
  int SchemaVersion() const override { return inner_->SchemaVersion(); }
  Status CreateTenant(const TenantRecord& tenant, const std::vector<KeyRecord>& keys,
                      const std::vector<KeyVersionRecord>& versions,
                      const std::vector<AliasRecord>& aliases) override {
    if (fail_create_tenant) return Injected();
    return inner_->CreateTenant(tenant, keys, versions, aliases);
  }
  Status CreateKey(const KeyRecord& key, const KeyVersionRecord& first_version) override {
    if (fail_create_key) return Injected();
    return inner_->CreateKey(key, first_version);
  }
  Status AddKeyVersion(const KeyVersionRecord& version) override {
    if (fail_add_version) return Injected();
    return inner_->AddKeyVersion(version);
  }
  Status CreateAlias(const AliasRecord& alias) override {
    if (fail_aliases) return Injected();
    return inner_->CreateAlias(alias);
  }
  Status UpdateAlias(const std::string& tenant, const std::string& name, const KeyId& key_id,
                     int64_t updated_at) override {
    if (fail_aliases) return Injected();
    return inner_->UpdateAlias(tenant, name, key_id, updated_at);
  }
  Status DeleteAlias(const std::string& tenant, const std::string& name) override {
    if (fail_aliases) return Injected();
    return inner_->DeleteAlias(tenant, name);
  }
  Status SetKeyEnabled(const KeyId& key_id, bool enabled) override {
    if (fail_lifecycle) return Injected();
    return inner_->SetKeyEnabled(key_id, enabled);
  }
  Status ScheduleKeyDeletion(const KeyId& key_id, int64_t due_at) override {
    if (fail_lifecycle) return Injected();
    return inner_->ScheduleKeyDeletion(key_id, due_at);
  }
  Status CancelKeyDeletion(const KeyId& key_id) override {
    if (fail_lifecycle) return Injected();
    return inner_->CancelKeyDeletion(key_id);
  }
  Status ScheduleTenantDeletion(const std::string& tenant, int64_t due_at) override {
    if (fail_lifecycle) return Injected();
    return inner_->ScheduleTenantDeletion(tenant, due_at);
  }
  Result<KeyStoreCopyInfo> Backup(const std::string& path) override { return inner_->Backup(path); }
  Status CancelTenantDeletion(const std::string& tenant) override {
    if (fail_lifecycle) return Injected();
    return inner_->CancelTenantDeletion(tenant);
  }
  Status SetRotationPeriod(const KeyId& key_id, std::optional<int64_t> period) override {
    if (fail_lifecycle) return Injected();
    return inner_->SetRotationPeriod(key_id, period);
  }
  Status SetMinDecryptionVersion(const KeyId& key_id, uint32_t version) override {
    if (fail_lifecycle) return Injected();
    return inner_->SetMinDecryptionVersion(key_id, version);
  }
  Status ReserveEncryptions(const KeyId& key_id, uint32_t version, uint64_t reserved) override {
    if (fail_reserve) return Injected();
    return inner_->ReserveEncryptions(key_id, version, reserved);
  }
  Status ShredKey(const KeyId& key_id, const std::vector<std::string>& labels,
                  int64_t queued_at) override {
    if (fail_shred) return Injected();
    return inner_->ShredKey(key_id, labels, queued_at);
  }
  Status ShredTenant(const std::string& tenant, const std::vector<std::string>& labels,
                     int64_t queued_at) override {
    if (fail_shred) return Injected();
    return inner_->ShredTenant(tenant, labels, queued_at);
  }
  Status TokenObjectDestroyed(const std::string& label) override {
    if (fail_dequeue) return Injected();
    return inner_->TokenObjectDestroyed(label);
  }
  Status ReplaceKeks(const KekReplacement& change, int64_t queued_at) override {
    if (fail_replace_keks) return Injected();
    return inner_->ReplaceKeks(change, queued_at);
  }
  Status WriteAccess(const AccessChange& change) override {
    if (fail_access) return Injected();
    return inner_->WriteAccess(change);
  }

 private:
  static Status Injected() { return Status(Code::kInternal, "injected store failure"); }
  std::unique_ptr<KeyStore> inner_;
};

class HierarchyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto module = pkcs11::Module::Load(SOFTHSM_MODULE);
    ASSERT_TRUE(module.has_value()) << module.error();
    module_ = *module;
    auto token = pkcs11::Token::Open(module_, softhsm_.label(),
                                     SecretBuffer::CopyOf(softhsm_.user_pin()), 4);
    ASSERT_TRUE(token.has_value()) << token.error();
    token_ = std::move(*token);
    ASSERT_NO_FATAL_FAILURE(OpenHierarchy());
  }

  void OpenHierarchy() {
    auto inner = OpenSqliteKeyStore(dir_ / "keystore.db");
    ASSERT_TRUE(inner.has_value()) << inner.error();
    auto store = std::make_unique<FlakyStore>(std::move(*inner));
    store_ = store.get();
    auto hierarchy = KeyHierarchy::Open(*token_, std::move(store), clock_, lifecycle_);
    ASSERT_TRUE(hierarchy.has_value()) << hierarchy.error();
    hierarchy_ = std::move(*hierarchy);
  }

  // Closes the hierarchy and its store, then opens both again.
  void Reopen() {
    hierarchy_.reset();
    store_ = nullptr;
    OpenHierarchy();
  }

  std::multiset<std::string> TokenLabels() {
    auto objects = token_->ListTokenSecretKeys();
    EXPECT_TRUE(objects.has_value()) << objects.error();
    std::multiset<std::string> labels;
    if (objects) {
      for (const auto& o : *objects) labels.insert(o.label);
    }
    return labels;
  }

  // The token object holding a key's KEK, if the token has it.
  std::optional<pkcs11::TokenObject> KekOf(std::string_view tenant, const KeyId& id) {
    auto objects = token_->ListTokenSecretKeys();
    if (!objects) return std::nullopt;
    for (const auto& o : *objects) {
      if (o.label == "tenants/" + std::string(tenant) + "/keys/" + KeyIdToHex(id)) return o;
    }
    return std::nullopt;
  }
  KeyId IdOf(std::string_view tenant, std::string_view key_ref) {
    auto info = hierarchy_->DescribeKey(tenant, key_ref);
    EXPECT_TRUE(info.has_value()) << info.error();
    return info ? info->id : KeyId{};
  }
  size_t TokenObjectsOf(std::string_view tenant) {
    size_t count = 0;
    for (const auto& label : TokenLabels()) {
      if (label.starts_with("tenants/" + std::string(tenant) + "/")) ++count;
    }
    return count;
  }

  KeyStoreSnapshot Snapshot() {
    auto snapshot = store_->LoadAll();
    EXPECT_TRUE(snapshot.has_value()) << snapshot.error();
    return snapshot.value_or(KeyStoreSnapshot{});
  }

  void MustCreateTenant(std::string_view tenant) {
    auto info = hierarchy_->CreateTenant(tenant);
    ASSERT_TRUE(info.has_value()) << info.error();
  }

  Bytes MustEncrypt(std::string_view tenant, std::string_view key_ref, std::string_view plaintext,
                    const EncryptionContext& context = {}) {
    auto out = hierarchy_->Encrypt(tenant, key_ref, AsBytes(plaintext), context);
    EXPECT_TRUE(out.has_value()) << out.error();
    return out ? out->ciphertext : Bytes{};
  }

  Result<std::string> Decrypt(std::string_view tenant, std::span<const uint8_t> ciphertext,
                              const EncryptionContext& context = {},
                              std::optional<std::string_view> expected = std::nullopt) {
    ASSIGN_OR_RETURN(DecryptOutput out, hierarchy_->Decrypt(tenant, ciphertext, context, expected));
    const auto span = out.plaintext.RevealSpan();
    return std::string(span.begin(), span.end());
  }

  testing::SoftHsmToken softhsm_;  // first: sets SOFTHSM2_CONF before Module::Load
  testing::TempDir dir_;
  FakeClock clock_;
  LifecycleOptions lifecycle_;
  std::shared_ptr<pkcs11::Module> module_;
  std::unique_ptr<pkcs11::Token> token_;
  FlakyStore* store_ = nullptr;  // owned by hierarchy_
  std::unique_ptr<KeyHierarchy> hierarchy_;
};

}  // namespace hierarchy_testing
}  // namespace kmsd
