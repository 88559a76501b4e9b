// End-to-end: someone who holds the token's user PIN and a copy of the
// keystore, using the PKCS#11 module directly (tests/support/pin_holder.h),
// cannot take any key kmsd made out of the token, change it, copy it, or
// unwrap a stored version into anything readable or persistent (DESIGN.md
// invariant 1); after shredding, an older keystore copy gives them nothing
// (invariant 2). Each route is asserted with the exact CK_RV SoftHSM2 2.6.1
// returns for it (its src/lib/SoftHSM.cpp: C_GetAttributeValue,
// C_SetAttributeValue, C_CopyObject, C_WrapKey, C_UnwrapKey, C_DeriveKey,
// C_EncryptInit/C_DecryptInit), and positive controls show the same client
// can use the keys, so a refusal is the token's policy and not a broken test.
// A real kmsd from a config on a private token.
#include "tests/support/pin_holder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/e2e/config_fixture.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {
namespace {

constexpr char kFastLifecycle[] =
    "lifecycle:\n  min_pending_window_seconds: 1\n  min_rotation_period_seconds: 1\n"
    "  check_interval_ms: 100\n";
constexpr char kPlatformMasterKey[] = "global/platform-master-key";
constexpr char kAuditLogKey[] = "global/audit-log-key";
constexpr char kApiKeyHmacKey[] = "global/api-key-hmac-key";

// How many routes PinHolder tries per target; a route that unexpectedly
// works adds a follow-up attempt, which has no expected code and fails.
constexpr size_t kWrappingKeyRoutes = 42;  // a KEK or the platform master key
constexpr size_t kHmacKeyRoutes = 41;      // the audit-log key
constexpr size_t kVersionRoutes = 44;

bool StartsWith(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

// The code SoftHSM2 2.6.1 answers for each route on what kmsd made; nullopt
// for a route this test does not know (a follow-up of a route that worked).
std::optional<CK_RV> ExpectedCode(std::string_view route) {
  if (StartsWith(route, "unwrapped: ")) route.remove_prefix(std::string_view("unwrapped: ").size());
  if (route.find(", then ") != std::string_view::npos) return std::nullopt;
  if (StartsWith(route, "use: ")) return CKR_OK;
  if (route == "destroy") return CKR_OK;
  if (route == "unwrap with the compliant template") return CKR_OK;
  // CKA_SENSITIVE=TRUE: C_GetAttributeValue refuses CKA_VALUE.
  if (route == "read CKA_VALUE") return CKR_ATTRIBUTE_SENSITIVE;
  // No CKA_ENCRYPT/CKA_DECRYPT on keys without data usage: checked before the
  // mechanism, whatever it is.
  if (StartsWith(route, "C_EncryptInit") || StartsWith(route, "C_DecryptInit")) {
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  }
  // CKA_MODIFIABLE=FALSE and CKA_COPYABLE=FALSE, checked before any attribute.
  if (StartsWith(route, "set ") || StartsWith(route, "copy ")) return CKR_ACTION_PROHIBITED;
  // CKA_EXTRACTABLE=FALSE, whatever the wrapping key.
  if (StartsWith(route, "wrap under the attacker's key")) return CKR_KEY_UNEXTRACTABLE;
  // The wrapping key's CKA_WRAP_TEMPLATE does not match the attacker's key.
  if (StartsWith(route, "wrap the attacker's key")) return CKR_KEY_NOT_WRAPPABLE;
  // SoftHSM2 derives secret keys only with the *_ENCRYPT_DATA mechanisms, and
  // only from a key with CKA_DERIVE=TRUE; it has no concatenate or XOR.
  if (route == "derive with CKM_AES_ECB_ENCRYPT_DATA" ||
      route == "derive with CKM_AES_CBC_ENCRYPT_DATA") {
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  }
  if (StartsWith(route, "derive with ")) return CKR_MECHANISM_INVALID;
  // The unwrapping key's CKA_UNWRAP_TEMPLATE: every attribute in it must be in
  // the caller's template with the same value.
  if (StartsWith(route, "unwrap ")) return CKR_TEMPLATE_INCONSISTENT;
  return std::nullopt;
}

void ExpectCodes(const std::vector<Attempt>& attempts, size_t routes) {
  EXPECT_EQ(attempts.size(), routes) << (attempts.empty() ? "" : attempts.front().target);
  std::set<std::string> seen;
  for (const Attempt& a : attempts) {
    EXPECT_TRUE(seen.insert(a.route).second) << "route tried twice: " << a.route;
    const std::optional<CK_RV> expected = ExpectedCode(a.route);
    if (!expected) {
      ADD_FAILURE() << a.route << " on " << a.target << ": " << RvName(a.rv)
                    << " (a route that should not exist)";
      continue;
    }
    EXPECT_EQ(RvName(a.rv), RvName(*expected)) << a.route << " on " << a.target;
  }
}

struct Sealed {
  std::string tenant;
  std::string plaintext;
  Bytes ciphertext;
};

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

class PinHolderTest : public ConfiguredKmsdTest {
 protected:
  std::unique_ptr<PinHolder> Attacker() {
    return PinHolder::Login(token_.module_path(), token_.label(), token_.user_pin());
  }

  void Ok(std::string_view op, std::string_view tenant, Value::Map args = {}) {
    auto reply = Call(op, tenant, std::move(args));
    ASSERT_TRUE(reply.has_value()) << op << ": " << reply.error();
  }

  Sealed Encrypt(const std::string& tenant, const std::string& key, const std::string& plaintext) {
    auto reply = Call("encrypt", tenant,
                      MapOf("key", key, "plaintext", Bytes(plaintext.begin(), plaintext.end())));
    EXPECT_TRUE(reply.has_value()) << reply.error();
    if (!reply) return {};
    auto ciphertext = reply->result().Binary("ciphertext");
    return {tenant, plaintext, Bytes(ciphertext->begin(), ciphertext->end())};
  }

  Result<std::string> Decrypt(const Sealed& sealed) {
    ASSIGN_OR_RETURN(Reply reply,
                     Call("decrypt", sealed.tenant, MapOf("ciphertext", sealed.ciphertext)));
    ASSIGN_OR_RETURN(auto plaintext, reply.result().Binary("plaintext"));
    return std::string(plaintext.begin(), plaintext.end());
  }

  void ExpectKmsdDecrypts(const std::vector<Sealed>& sealed) {
    for (const Sealed& s : sealed) {
      auto plaintext = Decrypt(s);
      ASSERT_TRUE(plaintext.has_value()) << s.plaintext << ": " << plaintext.error();
      EXPECT_EQ(*plaintext, s.plaintext);
    }
  }

  // Two tenants, an extra key, rotations, and a ciphertext under every version.
  std::vector<Sealed> Populate() {
    std::vector<Sealed> sealed;
    Ok("tenant.create", "acme");
    Ok("tenant.create", "globex");
    Ok("key.create", "acme", MapOf("name", "billing"));
    sealed.push_back(Encrypt("acme", "billing", "billing v1"));
    sealed.push_back(Encrypt("acme", "alias/data", "acme data v1"));
    sealed.push_back(Encrypt("globex", "alias/secrets", "globex secrets v1"));
    Ok("key.rotate", "acme", MapOf("key", "billing"));
    Ok("key.rotate", "acme", MapOf("key", "billing"));
    Ok("key.rotate", "globex", MapOf("key", "alias/data"));
    sealed.push_back(Encrypt("acme", "billing", "billing v3"));
    sealed.push_back(Encrypt("globex", "alias/data", "globex data v2"));
    return sealed;
  }

  // Every token object and every stored version, every route, exact codes;
  // the token's objects are the same afterwards.
  void AttackEverything(PinHolder& attacker, const KeystoreCopy& keystore) {
    std::set<std::string> expected_labels = keystore.token_labels;
    expected_labels.insert(kPlatformMasterKey);
    expected_labels.insert(kAuditLogKey);
    expected_labels.insert(kApiKeyHmacKey);
    const std::vector<TokenKey> keys = attacker.SecretKeys();
    std::set<std::string> labels;
    for (const TokenKey& key : keys) labels.insert(key.label);
    ASSERT_EQ(labels, expected_labels);
    ASSERT_EQ(keys.size(), labels.size());
    ASSERT_EQ(attacker.CountTokenObjects(), keys.size()) << "objects that are not secret keys";
    ASSERT_GE(attacker.CountAuditHeads(), 1u);
    ASSERT_LE(attacker.CountAuditHeads(), 2u);
    const std::map<std::string, std::string> before = attacker.Describe();

    // Versions first: against a token whose keys can be changed (kmsd before
    // the hardening), the routes on the keys below rename and re-purpose them.
    ASSERT_FALSE(keystore.versions.empty());
    for (const StoredVersion& version : keystore.versions) {
      SCOPED_TRACE(version.Name());
      const std::vector<CK_OBJECT_HANDLE> kek = attacker.FindKeys(version.wrapping_label);
      ASSERT_EQ(kek.size(), 1u) << version.wrapping_label;
      ExpectCodes(attacker.AttackVersion(version, kek[0]), kVersionRoutes);
    }
    for (const TokenKey& key : keys) {
      SCOPED_TRACE(key.label);
      const bool hmac = key.label == kAuditLogKey || key.label == kApiKeyHmacKey;
      EXPECT_EQ(key.key_type, hmac ? CKK_GENERIC_SECRET : CKK_AES);
      ExpectCodes(attacker.AttackTokenKey(key), hmac ? kHmacKeyRoutes : kWrappingKeyRoutes);
    }
    EXPECT_EQ(attacker.Describe(), before);
    EXPECT_EQ(attacker.CountTokenObjects(), keys.size());
  }

  // What the PIN holder may do: decrypt kmsd's ciphertexts by unwrapping the
  // right version into a usable session object (which proves that the
  // versions attacked above are the real ones).
  void ExpectAttackerCanUse(PinHolder& attacker, const KeystoreCopy& keystore,
                            const std::vector<Sealed>& sealed) {
    for (const Sealed& s : sealed) {
      SCOPED_TRACE(s.plaintext);
      ASSERT_GE(s.ciphertext.size(), 22u);
      const std::string key_id = Hex(std::span(s.ciphertext).subspan(2, 16));
      uint64_t number = 0;
      for (size_t i = 18; i < 22; ++i) number = number << 8 | s.ciphertext[i];
      const StoredVersion* version = nullptr;
      for (const StoredVersion& v : keystore.versions) {
        if (v.key_id == key_id && v.version == number) version = &v;
      }
      ASSERT_NE(version, nullptr);
      const std::vector<CK_OBJECT_HANDLE> kek = attacker.FindKeys(version->wrapping_label);
      ASSERT_EQ(kek.size(), 1u);
      CK_OBJECT_HANDLE usable = CK_INVALID_HANDLE;
      ASSERT_EQ(RvName(attacker.UnwrapUsable(kek[0], version->wrapped, &usable)), RvName(CKR_OK));
      std::string plaintext;
      ASSERT_EQ(RvName(attacker.DecryptCiphertext(usable, s.tenant, s.ciphertext, &plaintext)),
                RvName(CKR_OK));
      EXPECT_EQ(plaintext, s.plaintext);
    }
  }
};

TEST_F(PinHolderTest, NoRouteTakesAKeyOutWhileKmsdRunsOrAfterItStopped) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  const std::vector<Sealed> sealed = Populate();
  ASSERT_FALSE(HasFailure());
  const std::string copy = dir_ / "backups/stolen.db";
  Ok("keystore.backup", "", MapOf("path", copy));
  const KeystoreCopy keystore = ReadKeystore(copy);
  // 2 tenants x 3 keys + billing; billing has 3 versions, globex's data key 2.
  ASSERT_EQ(keystore.token_labels.size(), 7u);
  ASSERT_EQ(keystore.versions.size(), 10u);

  // kmsd running: SoftHSM2 lets the two processes share the token.
  {
    auto attacker = Attacker();
    ASSERT_NO_FATAL_FAILURE(AttackEverything(*attacker, keystore));
    ASSERT_NO_FATAL_FAILURE(ExpectAttackerCanUse(*attacker, keystore, sealed));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectKmsdDecrypts(sealed));

  // kmsd stopped, the live keystore file read directly.
  Stop();
  const KeystoreCopy live = ReadKeystore(keystore_path());
  ASSERT_EQ(live.versions.size(), keystore.versions.size());
  {
    auto attacker = Attacker();
    ASSERT_NO_FATAL_FAILURE(AttackEverything(*attacker, live));
  }
  Restart();
  ASSERT_NO_FATAL_FAILURE(ExpectKmsdDecrypts(sealed));
  Sealed fresh = Encrypt("acme", "billing", "after the attacks");
  ASSERT_NO_FATAL_FAILURE(ExpectKmsdDecrypts({fresh}));
}

TEST_F(PinHolderTest, AKeystoreCopyFromBeforeShreddingGivesNothing) {
  ASSERT_NO_FATAL_FAILURE(Start(kFastLifecycle));
  Ok("tenant.create", "acme");
  Ok("key.create", "acme", MapOf("name", "doomed"));
  Ok("key.rotate", "acme", MapOf("key", "doomed"));
  const Sealed doomed = Encrypt("acme", "doomed", "doomed");
  const Sealed kept = Encrypt("acme", "alias/data", "kept");
  const std::string copy = dir_ / "backups/before.db";
  Ok("keystore.backup", "", MapOf("path", copy));
  const KeystoreCopy old = ReadKeystore(copy);
  std::vector<StoredVersion> doomed_versions;
  for (const StoredVersion& v : old.versions) {
    if (v.key_name == "doomed") doomed_versions.push_back(v);
  }
  ASSERT_EQ(doomed_versions.size(), 2u);
  const std::string kek_label = doomed_versions[0].wrapping_label;
  ASSERT_TRUE(kek_label.starts_with("tenants/acme/keys/")) << kek_label;

  // Before the shredding, the PIN holder can use the key: it unwraps the
  // newest version into its own session and decrypts.
  auto attacker = Attacker();
  const std::vector<CK_OBJECT_HANDLE> kek = attacker->FindKeys(kek_label);
  ASSERT_EQ(kek.size(), 1u);
  CK_OBJECT_HANDLE lingering = CK_INVALID_HANDLE;
  ASSERT_EQ(RvName(attacker->UnwrapUsable(kek[0], doomed_versions[1].wrapped, &lingering)),
            RvName(CKR_OK));
  std::string plaintext;
  ASSERT_EQ(RvName(attacker->DecryptCiphertext(lingering, "acme", doomed.ciphertext, &plaintext)),
            RvName(CKR_OK));
  EXPECT_EQ(plaintext, "doomed");

  Ok("key.schedule-deletion", "acme",
     MapOf("key", "doomed", "pending_window_seconds", uint64_t{1}));
  ASSERT_TRUE(Eventually([&] {
    auto reply = Call("key.describe", "acme", MapOf("key", "doomed"));
    return !reply.has_value() && reply.error().code() == Code::kNotFound;
  }));

  // The KEK is gone from the token: by label, and through the handle the
  // attacker found before.
  EXPECT_TRUE(attacker->FindKeys(kek_label).empty());
  for (const StoredVersion& v : doomed_versions) {
    CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
    EXPECT_EQ(RvName(attacker->UnwrapUsable(kek[0], v.wrapped, &made)),
              RvName(CKR_UNWRAPPING_KEY_HANDLE_INVALID))
        << v.Name();
  }
  // What remains possible (docs/FORMATS.md): an object unwrapped before the
  // shredding into the attacker's own session lives until that session
  // closes; shredding destroys the KEK, not another process's session objects.
  plaintext.clear();
  EXPECT_EQ(RvName(attacker->DecryptCiphertext(lingering, "acme", doomed.ciphertext, &plaintext)),
            RvName(CKR_OK));
  EXPECT_EQ(plaintext, "doomed");
  attacker->ReopenSession();
  EXPECT_EQ(RvName(attacker->DecryptCiphertext(lingering, "acme", doomed.ciphertext, &plaintext)),
            RvName(CKR_OBJECT_HANDLE_INVALID));
  attacker.reset();

  // A new attacker with the old copy: no key on the token unwraps the
  // shredded versions (the others fail RFC 5649's integrity check, which
  // SoftHSM2 reports as CKR_GENERAL_ERROR).
  attacker = Attacker();
  EXPECT_TRUE(attacker->FindKeys(kek_label).empty());
  const std::vector<TokenKey> keys = attacker->SecretKeys();
  EXPECT_EQ(keys.size(), old.token_labels.size() - 1 + 3);  // one KEK fewer; the three globals
  for (const StoredVersion& v : doomed_versions) {
    for (const TokenKey& key : keys) {
      if (key.key_type != CKK_AES) continue;
      CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
      EXPECT_EQ(RvName(attacker->UnwrapUsable(key.handle, v.wrapped, &made)),
                RvName(CKR_GENERAL_ERROR))
          << v.Name() << " under " << key.label;
    }
  }
  // The versions of the other keys in the copy are still attacked in vain.
  KeystoreCopy rest;
  rest.token_labels = old.token_labels;
  rest.token_labels.erase(kek_label);
  for (const StoredVersion& v : old.versions) {
    if (v.key_name != "doomed") rest.versions.push_back(v);
  }
  ASSERT_NO_FATAL_FAILURE(AttackEverything(*attacker, rest));
  attacker.reset();

  auto refused = Decrypt(doomed);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kInvalidCiphertext);
  ASSERT_NO_FATAL_FAILURE(ExpectKmsdDecrypts({kept}));
}

}  // namespace
}  // namespace kmsd::testing
