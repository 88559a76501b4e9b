// End-to-end: crypto-shredding when a window ends (also against an older copy
// of the keystore put back in front of the same token), automatic rotation
// (also across downtime), the encryption limit per version, the minimum
// decryption version with kmsctl key rewrap-all, and start-up refusing an
// unusable keystore. A real kmsd on a real token, configured with lowered
// lifecycle limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "protocol/ciphertext.h"
#include "tests/e2e/config_fixture.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kFastLifecycle[] =
    "lifecycle:\n  min_pending_window_seconds: 1\n  min_rotation_period_seconds: 1\n"
    "  check_interval_ms: 100\n";

class ShreddingTest : public ConfiguredKmsdTest {
 protected:
  Bytes Encrypt(std::string_view tenant, std::string_view key, std::string_view plaintext) {
    auto reply = Call("encrypt", tenant, MapOf("key", key, "plaintext", ToBytes(plaintext)));
    EXPECT_TRUE(reply.has_value()) << reply.error();
    if (!reply) return {};
    auto ciphertext = reply->result().Binary("ciphertext");
    return Bytes(ciphertext->begin(), ciphertext->end());
  }

  Result<std::string> Decrypt(std::string_view tenant, const Bytes& ciphertext) {
    ASSIGN_OR_RETURN(Reply reply, Call("decrypt", tenant, MapOf("ciphertext", ciphertext)));
    ASSIGN_OR_RETURN(auto plaintext, reply.result().Binary("plaintext"));
    return std::string(plaintext.begin(), plaintext.end());
  }

  uint64_t LatestVersion(std::string_view tenant, std::string_view key) {
    auto reply = Call("key.describe", tenant, MapOf("key", key));
    EXPECT_TRUE(reply.has_value()) << reply.error();
    return reply ? reply->result().Uint("latest_version").value_or(0) : 0;
  }

  // `path`: in the backup directory the fixture configures (dir_/backups).
  void Backup(const std::string& path) {
    ASSERT_EQ(CodeOf(Call("keystore.backup", "", MapOf("path", path))), Code::kOk);
  }

  // Windows in seconds; tenants acme (with an extra key, billing) and globex.
  void StartWithTwoTenants() {
    ASSERT_NO_FATAL_FAILURE(Start(kFastLifecycle));
    ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
    ASSERT_EQ(CodeOf(Call("tenant.create", "globex")), Code::kOk);
    ASSERT_EQ(CodeOf(Call("key.create", "acme", MapOf("name", "billing"))), Code::kOk);
  }

  // Stops kmsd, puts `copy` back as its keystore and starts it again.
  void RestoreAndRestart(const std::string& copy) {
    Stop();
    CommandResult restored = RunKmsd({"--config", config_path_, "--restore", copy}, Env());
    ASSERT_EQ(restored.exit_code, 0) << restored.err;
    Restart();
  }
};

TEST_F(ShreddingTest, AShreddedKeyStaysUndecryptableWhenAnOldKeystoreIsPutBack) {
  ASSERT_NO_FATAL_FAILURE(StartWithTwoTenants());
  const Bytes doomed = Encrypt("acme", "billing", "doomed");
  const Bytes kept = Encrypt("acme", "alias/data", "kept");
  const Bytes other = Encrypt("globex", "alias/data", "other");
  const std::string before = dir_ / "backups/before.db";
  const std::string during = dir_ / "backups/during.db";
  ASSERT_NO_FATAL_FAILURE(Backup(before));
  ASSERT_EQ(CodeOf(Call("key.schedule-deletion", "acme",
                        MapOf("key", "billing", "pending_window_seconds", uint64_t{1}))),
            Code::kOk);
  ASSERT_NO_FATAL_FAILURE(Backup(during));
  ASSERT_TRUE(Eventually([&] {
    return CodeOf(Call("key.describe", "acme", MapOf("key", "billing"))) == Code::kNotFound;
  }));
  EXPECT_EQ(CodeOf(Decrypt("acme", doomed)), Code::kInvalidCiphertext);
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("shredded"));

  // The copy from before the deletion was scheduled thinks the key enabled,
  // but its KEK is gone from the token.
  ASSERT_NO_FATAL_FAILURE(RestoreAndRestart(before));
  auto refused = Decrypt("acme", doomed);
  ASSERT_EQ(CodeOf(refused), Code::kNotFound);
  EXPECT_THAT(refused.error().message(), HasSubstr("no longer in the token"));
  EXPECT_EQ(CodeOf(Call("encrypt", "acme", MapOf("key", "billing", "plaintext", ToBytes("x")))),
            Code::kNotFound);
  EXPECT_EQ(Decrypt("acme", kept).value_or(""), "kept");
  EXPECT_EQ(Decrypt("globex", other).value_or(""), "other");
  EXPECT_EQ(Decrypt("acme", Encrypt("acme", "alias/secrets", "new")).value_or(""), "new");

  // The copy from during the window: its window is over, so kmsd forgets the
  // key again at start, before serving.
  ASSERT_NO_FATAL_FAILURE(RestoreAndRestart(during));
  EXPECT_EQ(CodeOf(Call("key.describe", "acme", MapOf("key", "billing"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Decrypt("acme", doomed)), Code::kInvalidCiphertext);
  EXPECT_EQ(Decrypt("acme", kept).value_or(""), "kept");
}

TEST_F(ShreddingTest, AShreddedTenantStaysUndecryptableWhenAnOldKeystoreIsPutBack) {
  ASSERT_NO_FATAL_FAILURE(StartWithTwoTenants());
  const Bytes a1 = Encrypt("acme", "alias/data", "a1");
  const Bytes a2 = Encrypt("acme", "billing", "a2");
  const Bytes other = Encrypt("globex", "alias/data", "other");
  const std::string copy = dir_ / "backups/copy.db";
  ASSERT_NO_FATAL_FAILURE(Backup(copy));
  ASSERT_EQ(CodeOf(Call("tenant.schedule-deletion", "acme",
                        MapOf("pending_window_seconds", uint64_t{1}))),
            Code::kOk);
  ASSERT_TRUE(
      Eventually([&] { return CodeOf(Call("tenant.describe", "acme")) == Code::kNotFound; }));

  ASSERT_NO_FATAL_FAILURE(RestoreAndRestart(copy));
  for (const Bytes& ciphertext : {a1, a2}) {
    auto refused = Decrypt("acme", ciphertext);
    ASSERT_EQ(CodeOf(refused), Code::kNotFound);
    EXPECT_THAT(refused.error().message(), HasSubstr("shredded"));
  }
  EXPECT_EQ(Decrypt("globex", other).value_or(""), "other");
  EXPECT_EQ(Decrypt("globex", Encrypt("globex", "alias/secrets", "new")).value_or(""), "new");
}

// SIGKILL around the moment a window ends, so that some kills land between
// the keystore commit and the destruction in the token: after the restart the
// key is gone, and a copy of the keystore from before cannot bring it back.
TEST_F(ShreddingTest, KillsDuringShreddingNeverLeaveAKeyDecryptable) {
  ASSERT_NO_FATAL_FAILURE(StartWithTwoTenants());
  const Bytes kept = Encrypt("acme", "alias/data", "kept");
  std::mt19937 random(std::random_device{}());
  struct Shredded {
    std::string key;
    Bytes ciphertext;
    std::string copy;
  };
  std::vector<Shredded> shredded;
  for (int i = 0; i < 6; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    const std::string key = "doomed-" + std::to_string(i);
    ASSERT_EQ(CodeOf(Call("key.create", "acme", MapOf("name", key))), Code::kOk);
    shredded.push_back({key, Encrypt("acme", key, "secret " + key),
                        dir_ / ("backups/copy-" + std::to_string(i) + ".db")});
    ASSERT_NO_FATAL_FAILURE(Backup(shredded.back().copy));
    ASSERT_EQ(CodeOf(Call("key.schedule-deletion", "acme",
                          MapOf("key", key, "pending_window_seconds", uint64_t{1}))),
              Code::kOk);
    // The window ends within 1-2 s; the daemon looks every 100 ms.
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(900, 2300)(random)));
    connection_.reset();
    daemon_->Kill();
    daemon_.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // due for sure now
    Restart();
    EXPECT_EQ(CodeOf(Call("key.describe", "acme", MapOf("key", key))), Code::kNotFound);
    EXPECT_EQ(CodeOf(Decrypt("acme", shredded.back().ciphertext)), Code::kInvalidCiphertext);
    EXPECT_EQ(Decrypt("acme", kept).value_or(""), "kept");
  }
  for (const Shredded& item : shredded) {
    SCOPED_TRACE(item.copy);
    ASSERT_NO_FATAL_FAILURE(RestoreAndRestart(item.copy));
    auto refused = Decrypt("acme", item.ciphertext);
    ASSERT_EQ(CodeOf(refused), Code::kNotFound);
    EXPECT_THAT(refused.error().message(), HasSubstr("shredded"));
    EXPECT_EQ(Decrypt("acme", kept).value_or(""), "kept");
  }
}

TEST_F(ShreddingTest, ARotationPeriodRotatesOnTimeAndOnceAfterDowntime) {
  ASSERT_NO_FATAL_FAILURE(Start(kFastLifecycle));
  ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  const Bytes v1 = Encrypt("acme", "alias/data", "v1");
  auto set = Call("key.set-rotation", "acme",
                  MapOf("key", "alias/data", "rotation_period_seconds", uint64_t{3}));
  ASSERT_TRUE(set.has_value()) << set.error();
  EXPECT_EQ(set->result().Uint("rotation_period_seconds").value_or(0), 3u);
  EXPECT_TRUE(set->result().Has("next_rotation_at"));
  ASSERT_TRUE(Eventually([&] { return LatestVersion("acme", "alias/data") >= 2; }));
  const uint64_t before_stop = LatestVersion("acme", "alias/data");
  Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // down across the due time
  Restart();
  // Rotated at start, before serving (one more only if a rotation slipped in
  // between the describe and the stop on a slow machine).
  const uint64_t after_start = LatestVersion("acme", "alias/data");
  EXPECT_GE(after_start, before_stop + 1);
  EXPECT_LE(after_start, before_stop + 2);
  EXPECT_EQ(Decrypt("acme", v1).value_or(""), "v1");

  // kmsctl turns it off; bad periods are refused.
  CommandResult off =
      RunKmsctl(socket_path_, {"key", "set-rotation", "--tenant", "acme", "alias/data", "--off"});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_THAT(off.out, ::testing::Not(HasSubstr("rotation_period_seconds")));
  EXPECT_EQ(RunKmsctl(socket_path_,
                      {"key", "set-rotation", "--tenant", "acme", "alias/data", "--days", "3651"})
                .exit_code,
            3);
  EXPECT_EQ(
      RunKmsctl(socket_path_, {"key", "set-rotation", "--tenant", "acme", "alias/data"}).exit_code,
      2);
  CommandResult days = RunKmsctl(
      socket_path_, {"key", "set-rotation", "--tenant", "acme", "alias/data", "--days", "90"});
  ASSERT_EQ(days.exit_code, 0) << days.err;
  EXPECT_THAT(days.out, HasSubstr("rotation_period_seconds: 7776000"));
}

TEST_F(ShreddingTest, AVersionRollsOverAtItsEncryptionLimitAndCountsSurviveAKill) {
  ASSERT_NO_FATAL_FAILURE(Start("lifecycle:\n  max_encryptions_per_version: 3\n"));
  ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  std::vector<Bytes> ciphertexts;
  for (int i = 0; i < 3; ++i) ciphertexts.push_back(Encrypt("acme", "alias/data", "x"));
  // Every kind of encryption counts: a data key, a re-encryption, batch items.
  auto data_key = Call("generate-data-key", "acme", MapOf("key", "alias/data"));
  ASSERT_TRUE(data_key.has_value()) << data_key.error();
  EXPECT_EQ(data_key->result().Uint("version").value_or(0), 2u);
  auto reencrypted = Call("re-encrypt", "acme", MapOf("ciphertext", ciphertexts[0]));
  ASSERT_TRUE(reencrypted.has_value()) << reencrypted.error();
  EXPECT_EQ(reencrypted->result().Uint("version").value_or(0), 2u);
  Value::Array items;
  for (int i = 0; i < 3; ++i) items.emplace_back(MapOf("plaintext", ToBytes("b")));
  auto batch = Call("batch-encrypt", "acme", MapOf("key", "alias/data", "items", std::move(items)));
  ASSERT_TRUE(batch.has_value()) << batch.error();
  std::vector<uint64_t> batch_versions;
  auto results = batch->result().Array("results");
  ASSERT_TRUE(results.has_value());
  for (const auto& item : *results) {
    batch_versions.push_back(Fields::Of(item, "item")->Uint("version").value_or(0));
  }
  EXPECT_EQ(batch_versions, (std::vector<uint64_t>{2, 3, 3}));

  auto versions = [&] {
    std::vector<uint64_t> counts;
    auto reply = Call("key.list-versions", "acme", MapOf("key", "alias/data"));
    EXPECT_TRUE(reply.has_value()) << reply.error();
    if (!reply) return counts;
    auto list = reply->result().Array("versions");
    if (!list) return counts;
    for (const auto& entry : *list) {
      counts.push_back(Fields::Of(entry, "version")->Uint("encryptions").value_or(0));
    }
    return counts;
  };
  EXPECT_EQ(versions(), (std::vector<uint64_t>{3, 3, 2}));

  // Killed, not stopped: the reserved counts are on disk, never fewer.
  connection_.reset();
  daemon_->Kill();
  daemon_.reset();
  Restart();
  const std::vector<uint64_t> after = versions();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0], 3u);
  EXPECT_EQ(after[1], 3u);
  EXPECT_GE(after[2], 2u);
  auto next = Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", ToBytes("y")));
  ASSERT_TRUE(next.has_value()) << next.error();
  EXPECT_EQ(next->result().Uint("version").value_or(0), after[2] + 1 > 3 ? 4u : 3u);
  for (const Bytes& ciphertext : ciphertexts)
    EXPECT_EQ(Decrypt("acme", ciphertext).value_or(""), "x");
}

TEST_F(ShreddingTest, RewrapAllThenRaiseTheMinimumDecryptionVersion) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    files.push_back(dir_ / ("file" + std::to_string(i)));
    std::ofstream(files.back()) << "secret " << i;
  }
  std::vector<std::string> encrypt = {"batch", "encrypt",    "--tenant",  "acme",
                                      "--key", "alias/data", "--context", "app=web"};
  encrypt.insert(encrypt.end(), files.begin(), files.end());
  ASSERT_EQ(RunKmsctl(socket_path_, encrypt).exit_code, 0);
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const Bytes old_v1 = read(files[0] + ".enc");
  ASSERT_EQ(ParseCiphertext(old_v1)->version, 1u);
  ASSERT_EQ(CodeOf(Call("key.rotate", "acme", MapOf("key", "alias/data"))), Code::kOk);

  std::vector<std::string> rewrap = {"key",  "rewrap-all", "--tenant",
                                     "acme", "--context",  "app=web"};
  for (const auto& file : files) rewrap.push_back(file + ".enc");
  CommandResult rewrapped = RunKmsctl(socket_path_, rewrap);
  ASSERT_EQ(rewrapped.exit_code, 0) << rewrapped.err;
  for (const auto& file : files) EXPECT_EQ(ParseCiphertext(read(file + ".enc"))->version, 2u);

  auto raised = RunKmsctl(
      socket_path_, {"key", "set-min-decryption-version", "--tenant", "acme", "alias/data", "2"});
  ASSERT_EQ(raised.exit_code, 0) << raised.err;
  EXPECT_THAT(raised.out, HasSubstr("min_decryption_version: 2"));
  auto old_refused =
      Call("decrypt", "acme", MapOf("ciphertext", old_v1, "context", MapOf("app", "web")));
  ASSERT_EQ(CodeOf(old_refused), Code::kKeyDisabled);
  EXPECT_THAT(old_refused.error().message(), HasSubstr("minimum decryption version 2"));
  std::vector<std::string> decrypt = {"batch", "decrypt",   "--tenant",
                                      "acme",  "--context", "app=web"};
  for (const auto& file : files) {
    std::filesystem::remove(file);
    decrypt.push_back(file + ".enc");
  }
  CommandResult decrypted = RunKmsctl(socket_path_, decrypt);
  ASSERT_EQ(decrypted.exit_code, 0) << decrypted.err;
  for (int i = 0; i < 3; ++i) {
    const Bytes plain = read(files[i]);
    EXPECT_EQ(std::string(plain.begin(), plain.end()), "secret " + std::to_string(i));
  }

  // Bounds; lowering again lets the old version decrypt.
  EXPECT_EQ(RunKmsctl(socket_path_,
                      {"key", "set-min-decryption-version", "--tenant", "acme", "alias/data", "3"})
                .exit_code,
            3);
  EXPECT_EQ(RunKmsctl(socket_path_,
                      {"key", "set-min-decryption-version", "--tenant", "acme", "alias/data", "0"})
                .exit_code,
            3);
  ASSERT_EQ(RunKmsctl(socket_path_,
                      {"key", "set-min-decryption-version", "--tenant", "acme", "alias/data", "1"})
                .exit_code,
            0);
  EXPECT_EQ(
      CodeOf(Call("decrypt", "acme", MapOf("ciphertext", old_v1, "context", MapOf("app", "web")))),
      Code::kOk);

  // A file that is not a ciphertext fails alone; the others are still rewrapped.
  const std::string junk = dir_ / "junk.enc";
  std::ofstream(junk) << "not a ciphertext";
  ASSERT_EQ(CodeOf(Call("key.rotate", "acme", MapOf("key", "alias/data"))), Code::kOk);
  CommandResult mixed = RunKmsctl(socket_path_, {"key", "rewrap-all", "--tenant", "acme",
                                                 "--context", "app=web", junk, files[0] + ".enc"});
  EXPECT_EQ(mixed.exit_code, 5) << mixed.err;
  EXPECT_THAT(mixed.err, HasSubstr("junk.enc: INVALID_CIPHERTEXT"));
  EXPECT_EQ(ParseCiphertext(read(files[0] + ".enc"))->version, 3u);
  const Bytes junk_after = read(junk);
  EXPECT_EQ(std::string(junk_after.begin(), junk_after.end()), "not a ciphertext");
}

TEST_F(ShreddingTest, AMissingKeystoreInFrontOfATokenWithTenantsIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  Stop();
  std::filesystem::rename(keystore_path(), dir_ / "moved.db");
  std::filesystem::remove(keystore_path() + "-wal");
  std::filesystem::remove(keystore_path() + "-shm");
  CommandResult refused = RunKmsd({"--config", config_path_}, Env());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err + refused.out, HasSubstr("does not exist, but token"));
  EXPECT_THAT(refused.err + refused.out, HasSubstr("kmsd --restore"));
  EXPECT_FALSE(std::filesystem::exists(keystore_path()));  // no fresh file made

  // A file that is not a keystore is refused too, and left as it was.
  std::ofstream(keystore_path()) << "garbage that is not a database";
  refused = RunKmsd({"--config", config_path_}, Env());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err + refused.out, HasSubstr("not a kmsd keystore"));
  std::ifstream in(keystore_path());
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "garbage that is not a database");

  // Put back, it starts as before.
  std::filesystem::rename(dir_ / "moved.db", keystore_path());
  Restart();
  EXPECT_EQ(CodeOf(Call("tenant.describe", "acme")), Code::kOk);
}

}  // namespace
}  // namespace kmsd::testing
