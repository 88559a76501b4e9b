// pkcs11::Module and pkcs11::Token against a real SoftHSM2 token, one private
// token per test (SoftHsmToken must exist before Module::Load: SoftHSM2 reads
// SOFTHSM2_CONF in C_Initialize).
#include "pkcs11/token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pkcs11/module.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/test_helpers.h"
#include "tests/unit/pkcs11/make_iv.h"

namespace kmsd {
namespace {

using pkcs11::Module;
using pkcs11::ObjectHandle;
using pkcs11::Token;
using ::testing::HasSubstr;

// --- Module --------------------------------------------------------------------

TEST(ModuleTest, LoadOfAMissingLibraryIsTokenUnavailable) {
  auto module = Module::Load("/nonexistent/libpkcs11-missing.so");
  ASSERT_EQ(CodeOf(module), Code::kTokenUnavailable);
  EXPECT_THAT(module.error().message(), HasSubstr("/nonexistent/libpkcs11-missing.so"));
}

TEST(ModuleTest, LoadOfALibraryWithoutPkcs11IsTokenUnavailable) {
  auto module = Module::Load("libz.so.1");
  ASSERT_EQ(CodeOf(module), Code::kTokenUnavailable);
  EXPECT_THAT(module.error().message(), HasSubstr("C_GetFunctionList"));
}

TEST(ModuleTest, LoadOfANonLibraryFileIsTokenUnavailable) {
  testing::TempDir dir;
  const std::string path = dir / "not-a-library.so";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("not an ELF file\n", f);
  fclose(f);
  EXPECT_EQ(CodeOf(Module::Load(path)), Code::kTokenUnavailable);
}

TEST(ModuleTest, FindsATokenByLabelOnly) {
  testing::SoftHsmToken softhsm("find-me");
  auto module = Module::Load(SOFTHSM_MODULE);
  ASSERT_TRUE(module.has_value()) << module.error();
  EXPECT_EQ((*module)->path(), SOFTHSM_MODULE);
  auto slot = (*module)->FindSlotByTokenLabel("find-me");
  ASSERT_TRUE(slot.has_value()) << slot.error();
  for (std::string_view other : {"find-m", "find-me2", "Find-me", "", "find-me "}) {
    auto missing = (*module)->FindSlotByTokenLabel(other);
    ASSERT_EQ(CodeOf(missing), Code::kNotFound) << "'" << other << "'";
    EXPECT_THAT(missing.error().message(), HasSubstr("no token labelled"));
  }
}

// --- Token fixture -------------------------------------------------------------

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto module = Module::Load(SOFTHSM_MODULE);
    ASSERT_TRUE(module.has_value()) << module.error();
    module_ = *module;
    auto token = Token::Open(module_, softhsm_.label(), Pin(), 4);
    ASSERT_TRUE(token.has_value()) << token.error();
    token_ = std::move(*token);
  }

  SecretBuffer Pin() const { return SecretBuffer::CopyOf(softhsm_.user_pin()); }

  // An extra session of our own, for reading attributes through the raw API.
  CK_SESSION_HANDLE RawSession() {
    CK_FUNCTION_LIST* fn = module_->functions();
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    EXPECT_EQ(
        fn->C_OpenSession(token_->info().slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session),
        CKR_OK);
    raw_sessions_.push_back(session);
    return session;
  }

  CK_RV ReadBool(ObjectHandle handle, CK_ATTRIBUTE_TYPE type, CK_BBOOL* value) {
    CK_ATTRIBUTE attr = {type, value, sizeof *value};
    return module_->functions()->C_GetAttributeValue(RawSession(), handle, &attr, 1);
  }
  bool BoolAttribute(ObjectHandle handle, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL value = 0xee;
    EXPECT_EQ(ReadBool(handle, type, &value), CKR_OK) << "attribute 0x" << std::hex << type;
    EXPECT_TRUE(value == CK_TRUE || value == CK_FALSE);
    return value == CK_TRUE;
  }
  CK_ULONG UlongAttribute(ObjectHandle handle, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG value = 0;
    CK_ATTRIBUTE attr = {type, &value, sizeof value};
    EXPECT_EQ(module_->functions()->C_GetAttributeValue(RawSession(), handle, &attr, 1), CKR_OK);
    return value;
  }
  // How many attributes an array attribute (CKA_UNWRAP_TEMPLATE) holds.
  size_t TemplateSize(ObjectHandle handle, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE attr = {type, nullptr, 0};
    EXPECT_EQ(module_->functions()->C_GetAttributeValue(RawSession(), handle, &attr, 1), CKR_OK);
    return attr.ulValueLen / sizeof(CK_ATTRIBUTE);
  }
  CK_RV ReadValue(ObjectHandle handle) {
    uint8_t buffer[64] = {};
    CK_ATTRIBUTE attr = {CKA_VALUE, buffer, sizeof buffer};
    CK_RV rv = module_->functions()->C_GetAttributeValue(RawSession(), handle, &attr, 1);
    EXPECT_EQ(attr.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    EXPECT_TRUE(
        std::all_of(std::begin(buffer), std::end(buffer), [](uint8_t b) { return b == 0; }));
    return rv;
  }

  std::set<std::string> Labels() {
    auto objects = token_->ListTokenSecretKeys();
    EXPECT_TRUE(objects.has_value()) << objects.error();
    std::set<std::string> labels;
    if (objects) {
      for (const auto& o : *objects) labels.insert(o.label);
    }
    return labels;
  }

  ObjectHandle Root() {
    auto root = token_->CreateTokenWrappingKey("root");
    EXPECT_TRUE(root.has_value()) << root.error();
    return root.value_or(CK_INVALID_HANDLE);
  }

  // A data key: generated in the token, wrapped under `root`, unwrapped again.
  ObjectHandle DataKey(ObjectHandle root) {
    auto wrapped = token_->GenerateWrappedAesKey(root);
    EXPECT_TRUE(wrapped.has_value()) << wrapped.error();
    if (!wrapped) return CK_INVALID_HANDLE;
    auto key = token_->UnwrapAesKey(root, *wrapped);
    EXPECT_TRUE(key.has_value()) << key.error();
    return key ? key->handle : CK_INVALID_HANDLE;
  }

  void TearDown() override {
    if (!module_) return;
    for (CK_SESSION_HANDLE s : raw_sessions_) module_->functions()->C_CloseSession(s);
  }

  testing::SoftHsmToken softhsm_;  // first: sets SOFTHSM2_CONF before Module::Load
  std::shared_ptr<Module> module_;
  std::unique_ptr<Token> token_;
  std::vector<CK_SESSION_HANDLE> raw_sessions_;
};

TEST_F(TokenTest, OpenReportsTheTokenInfo) {
  EXPECT_EQ(token_->info().label, softhsm_.label());
  EXPECT_EQ(token_->info().manufacturer, "SoftHSM project");
  EXPECT_EQ(token_->info().slot, *module_->FindSlotByTokenLabel(softhsm_.label()));
  EXPECT_EQ(&token_->module(), module_.get());
  EXPECT_TRUE(token_->Ping().ok());
}

TEST_F(TokenTest, OpenWithAWrongPinIsTokenUnavailable) {
  token_.reset();  // log out, so that the next login really checks the PIN
  auto token =
      Token::Open(module_, softhsm_.label(), SecretBuffer::CopyOf(std::string_view("0000")), 2);
  ASSERT_EQ(CodeOf(token), Code::kTokenUnavailable);
  EXPECT_THAT(token.error().message(), HasSubstr("C_Login"));
  // The right PIN still works afterwards.
  auto again = Token::Open(module_, softhsm_.label(), Pin(), 2);
  EXPECT_TRUE(again.has_value()) << again.error();
}

TEST_F(TokenTest, OpenOfAnUnknownLabelIsNotFound) {
  EXPECT_EQ(CodeOf(Token::Open(module_, "no-such-token", Pin(), 2)), Code::kNotFound);
}

TEST_F(TokenTest, CreatesWrappingKeysHardened) {
  auto key = token_->CreateTokenWrappingKey("wrapping-key");
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_TRUE(BoolAttribute(*key, CKA_TOKEN));
  EXPECT_TRUE(BoolAttribute(*key, CKA_PRIVATE));
  EXPECT_TRUE(BoolAttribute(*key, CKA_SENSITIVE));
  EXPECT_TRUE(BoolAttribute(*key, CKA_ALWAYS_SENSITIVE));
  EXPECT_FALSE(BoolAttribute(*key, CKA_EXTRACTABLE));
  EXPECT_TRUE(BoolAttribute(*key, CKA_NEVER_EXTRACTABLE));
  EXPECT_FALSE(BoolAttribute(*key, CKA_MODIFIABLE));
  EXPECT_FALSE(BoolAttribute(*key, CKA_COPYABLE));
  EXPECT_TRUE(BoolAttribute(*key, CKA_DESTROYABLE));  // shredding destroys it
  EXPECT_TRUE(BoolAttribute(*key, CKA_WRAP));
  EXPECT_TRUE(BoolAttribute(*key, CKA_UNWRAP));
  for (CK_ATTRIBUTE_TYPE usage : {CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_DERIVE}) {
    EXPECT_FALSE(BoolAttribute(*key, usage)) << "attribute 0x" << std::hex << usage;
  }
  EXPECT_EQ(UlongAttribute(*key, CKA_KEY_TYPE), CKK_AES);
  EXPECT_EQ(UlongAttribute(*key, CKA_VALUE_LEN), 32u);
  EXPECT_EQ(ReadValue(*key), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(TemplateSize(*key, CKA_UNWRAP_TEMPLATE), 10u);
  EXPECT_EQ(TemplateSize(*key, CKA_WRAP_TEMPLATE), 9u);
  EXPECT_EQ(token_->IsHardened(*key), true);
}

TEST_F(TokenTest, KeysMadeBeforeHardeningAreNotHardened) {
  auto old = token_->TEST_CreateUnhardenedWrappingKey("old-kek");
  ASSERT_TRUE(old.has_value()) << old.error();
  EXPECT_TRUE(BoolAttribute(*old, CKA_MODIFIABLE));
  EXPECT_EQ(TemplateSize(*old, CKA_UNWRAP_TEMPLATE), 0u);
  EXPECT_EQ(token_->IsHardened(*old), false);
  auto hmac = token_->CreateTokenHmacKey("audit");
  ASSERT_TRUE(hmac.has_value());
  EXPECT_EQ(token_->IsHardened(*hmac), true);
  // A destroyed key cannot be checked at all.
  ASSERT_TRUE(token_->DestroyObject(*old).ok());
  EXPECT_EQ(CodeOf(token_->IsHardened(*old)), Code::kNotFound);
}

TEST_F(TokenTest, VersionsMoveFromAnUnhardenedKeyToAHardenedOneWithTheSameKey) {
  auto old = token_->TEST_CreateUnhardenedWrappingKey("old-kek");
  auto hardened = token_->CreateTokenWrappingKey("new-kek");
  ASSERT_TRUE(old.has_value() && hardened.has_value());
  auto wrapped = token_->GenerateWrappedAesKey(*old);
  ASSERT_TRUE(wrapped.has_value()) << wrapped.error();
  auto moved = token_->RewrapAesKey(*old, *wrapped, *hardened);
  ASSERT_TRUE(moved.has_value()) << moved.error();
  EXPECT_NE(*moved, *wrapped);
  auto before = token_->UnwrapAesKey(*old, *wrapped);
  auto after = token_->UnwrapAesKey(*hardened, *moved);
  ASSERT_TRUE(before.has_value() && after.has_value());
  auto sealed = token_->EncryptGcm(*before, MakeIv(3), {}, AsBytes("same key"));
  ASSERT_TRUE(sealed.has_value());
  auto opened = token_->DecryptGcm(*after, MakeIv(3), {}, *sealed);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  EXPECT_EQ(std::string(opened->RevealData(), opened->RevealData() + opened->size()), "same key");
  // The temporary extractable object is gone again.
  EXPECT_EQ(Labels(), (std::set<std::string>{"old-kek", "new-kek"}));
  // A hardened key never unwraps into something that can be wrapped again.
  auto again = token_->RewrapAesKey(*hardened, *moved, *old);
  ASSERT_EQ(CodeOf(again), Code::kInternal);
  EXPECT_THAT(again.error().message(), HasSubstr("CK_RV 0xd1"));  // CKR_TEMPLATE_INCONSISTENT
}

TEST_F(TokenTest, CreatesTokenHmacKeysNonExtractableAndSensitive) {
  auto key = token_->CreateTokenHmacKey("audit");
  ASSERT_TRUE(key.has_value()) << key.error();
  EXPECT_TRUE(BoolAttribute(*key, CKA_TOKEN));
  EXPECT_TRUE(BoolAttribute(*key, CKA_SENSITIVE));
  EXPECT_FALSE(BoolAttribute(*key, CKA_EXTRACTABLE));
  EXPECT_TRUE(BoolAttribute(*key, CKA_SIGN));
  EXPECT_FALSE(BoolAttribute(*key, CKA_ENCRYPT));
  EXPECT_FALSE(BoolAttribute(*key, CKA_WRAP));
  EXPECT_EQ(UlongAttribute(*key, CKA_KEY_TYPE), CKK_GENERIC_SECRET);
  EXPECT_EQ(UlongAttribute(*key, CKA_VALUE_LEN), 32u);
  EXPECT_EQ(ReadValue(*key), CKR_ATTRIBUTE_SENSITIVE);
}

TEST_F(TokenTest, ListTokenSecretKeysSeesTokenKeysByLabelButNotSessionKeys) {
  EXPECT_TRUE(Labels().empty());
  auto root = token_->CreateTokenWrappingKey("tenants/acme/root/01");
  ASSERT_TRUE(root.has_value());
  auto hmac = token_->CreateTokenHmacKey("global/audit-log-key");
  ASSERT_TRUE(hmac.has_value());
  const ObjectHandle session_key = DataKey(*root);
  ASSERT_NE(session_key, CK_INVALID_HANDLE);
  EXPECT_EQ(Labels(), (std::set<std::string>{"tenants/acme/root/01", "global/audit-log-key"}));
  auto objects = token_->ListTokenSecretKeys();
  ASSERT_TRUE(objects.has_value());
  for (const auto& o : *objects) {
    EXPECT_EQ(o.handle, o.label == "global/audit-log-key" ? *hmac : *root);
  }
  ASSERT_TRUE(token_->DestroyObject(*root).ok());
  EXPECT_EQ(Labels(), (std::set<std::string>{"global/audit-log-key"}));
}

TEST_F(TokenTest, DestroyingAnUnknownObjectIsNotFound) {
  const ObjectHandle root = Root();
  ASSERT_TRUE(token_->DestroyObject(root).ok());
  EXPECT_EQ(token_->DestroyObject(root).code(), Code::kNotFound);
}

TEST_F(TokenTest, WrappedKeysAreFortyBytesAndFresh) {
  const ObjectHandle root = Root();
  auto a = token_->GenerateWrappedAesKey(root);
  auto b = token_->GenerateWrappedAesKey(root);
  ASSERT_TRUE(a.has_value()) << a.error();
  ASSERT_TRUE(b.has_value()) << b.error();
  EXPECT_EQ(a->size(), 40u);  // RFC 5649 of a 32-byte key
  EXPECT_NE(*a, *b);
  // The temporary key is gone: only the root is left on the token.
  EXPECT_EQ(Labels(), (std::set<std::string>{"root"}));
}

TEST_F(TokenTest, UnwrappedKeysAreNonExtractableSessionObjects) {
  const ObjectHandle key = DataKey(Root());
  ASSERT_NE(key, CK_INVALID_HANDLE);
  EXPECT_FALSE(BoolAttribute(key, CKA_TOKEN));
  EXPECT_TRUE(BoolAttribute(key, CKA_SENSITIVE));
  EXPECT_FALSE(BoolAttribute(key, CKA_EXTRACTABLE));
  EXPECT_TRUE(BoolAttribute(key, CKA_ENCRYPT));
  EXPECT_TRUE(BoolAttribute(key, CKA_DECRYPT));
  EXPECT_FALSE(BoolAttribute(key, CKA_WRAP));
  EXPECT_FALSE(BoolAttribute(key, CKA_UNWRAP));
  EXPECT_EQ(ReadValue(key), CKR_ATTRIBUTE_SENSITIVE);
}

TEST_F(TokenTest, GcmRoundTripsEverySize) {
  const ObjectHandle key = DataKey(Root());
  const std::string aad_text = "header and tenant";
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1000}, size_t{65536}}) {
    std::vector<uint8_t> plaintext(n);
    for (size_t i = 0; i < n; ++i) plaintext[i] = static_cast<uint8_t>(i * 3);
    auto sealed = token_->EncryptGcm(key, MakeIv(1), AsBytes(aad_text), plaintext);
    ASSERT_TRUE(sealed.has_value()) << "size " << n << ": " << sealed.error();
    ASSERT_EQ(sealed->size(), n + 16);
    auto opened = token_->DecryptGcm(key, MakeIv(1), AsBytes(aad_text), *sealed);
    ASSERT_TRUE(opened.has_value()) << "size " << n << ": " << opened.error();
    EXPECT_TRUE(opened->EqualsInConstantTime(plaintext)) << "size " << n;
  }
}

TEST_F(TokenTest, GcmAcceptsAnEmptyPlaintextAndAadWithoutABuffer) {
  // Empty spans may carry a null pointer; modules reject NULL pData.
  const ObjectHandle key = DataKey(Root());
  auto sealed = token_->EncryptGcm(key, MakeIv(2), {}, std::span<const uint8_t>());
  ASSERT_TRUE(sealed.has_value()) << sealed.error();
  ASSERT_EQ(sealed->size(), 16u);
  auto opened = token_->DecryptGcm(key, MakeIv(2), {}, *sealed);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  EXPECT_TRUE(opened->empty());
}

TEST_F(TokenTest, GcmMatchesOnlyTheSameIvAndAad) {
  const ObjectHandle key = DataKey(Root());
  const std::string plaintext = "the plaintext";
  auto a = token_->EncryptGcm(key, MakeIv(1), AsBytes("aad"), AsBytes(plaintext));
  auto b = token_->EncryptGcm(key, MakeIv(2), AsBytes("aad"), AsBytes(plaintext));
  auto c = token_->EncryptGcm(key, MakeIv(1), AsBytes("aad"), AsBytes(plaintext));
  ASSERT_TRUE(a && b && c);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*a, *c);  // deterministic for a fixed IV: the caller must never repeat one
}

class TamperTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    key_ = DataKey(Root());
    auto sealed = token_->EncryptGcm(key_, MakeIv(9), aad_, plaintext_);
    ASSERT_TRUE(sealed.has_value()) << sealed.error();
    sealed_ = *sealed;
  }
  Code DecryptCode(const Iv& iv, std::span<const uint8_t> aad, std::span<const uint8_t> sealed) {
    return CodeOf(token_->DecryptGcm(key_, iv, aad, sealed));
  }

  ObjectHandle key_ = CK_INVALID_HANDLE;
  const std::vector<uint8_t> plaintext_ = std::vector<uint8_t>(20, 0x42);
  const std::vector<uint8_t> aad_ = {'k', '1', 0, 1, 2, 3, 'a', 'c', 'm', 'e'};
  Bytes sealed_;
};

TEST_F(TamperTest, UntouchedCiphertextDecrypts) {
  EXPECT_EQ(DecryptCode(MakeIv(9), aad_, sealed_), Code::kOk);
}

TEST_F(TamperTest, EveryBitFlipInCiphertextOrTagIsInvalidCiphertext) {
  for (size_t i = 0; i < sealed_.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = sealed_;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_EQ(DecryptCode(MakeIv(9), aad_, bad), Code::kInvalidCiphertext)
          << "byte " << i << " bit " << bit;
    }
  }
  // The pool's sessions were not left with an operation active.
  EXPECT_EQ(DecryptCode(MakeIv(9), aad_, sealed_), Code::kOk);
}

TEST_F(TamperTest, EveryTruncationIsInvalidCiphertext) {
  for (size_t n = 0; n < sealed_.size(); ++n) {
    ASSERT_EQ(DecryptCode(MakeIv(9), aad_, std::span(sealed_).first(n)), Code::kInvalidCiphertext)
        << "length " << n;
  }
  Bytes longer = sealed_;
  longer.push_back(0);
  EXPECT_EQ(DecryptCode(MakeIv(9), aad_, longer), Code::kInvalidCiphertext);
  EXPECT_EQ(DecryptCode(MakeIv(9), aad_, sealed_), Code::kOk);
}

TEST_F(TamperTest, EveryBitFlipInAadIsInvalidCiphertext) {
  for (size_t i = 0; i < aad_.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = aad_;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_EQ(DecryptCode(MakeIv(9), bad, sealed_), Code::kInvalidCiphertext)
          << "byte " << i << " bit " << bit;
    }
  }
  EXPECT_EQ(DecryptCode(MakeIv(9), std::span(aad_).first(aad_.size() - 1), sealed_),
            Code::kInvalidCiphertext);
  EXPECT_EQ(DecryptCode(MakeIv(9), {}, sealed_), Code::kInvalidCiphertext);
}

TEST_F(TamperTest, EveryBitFlipInIvIsInvalidCiphertext) {
  for (size_t i = 0; i < kIvSize; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Iv bad = MakeIv(9);
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_EQ(DecryptCode(bad, aad_, sealed_), Code::kInvalidCiphertext)
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST_F(TamperTest, AnotherKeyIsInvalidCiphertext) {
  const ObjectHandle other = DataKey(Root());
  EXPECT_EQ(CodeOf(token_->DecryptGcm(other, MakeIv(9), aad_, sealed_)), Code::kInvalidCiphertext);
}

TEST_F(TokenTest, AWrappingOnlyRootCannotEncryptOrDecrypt) {
  const ObjectHandle root = Root();
  auto sealed = token_->EncryptGcm(root, MakeIv(1), {}, AsBytes("data"));
  ASSERT_EQ(CodeOf(sealed), Code::kInternal);
  EXPECT_THAT(sealed.error().message(), HasSubstr("C_EncryptInit"));
  EXPECT_EQ(CodeOf(token_->DecryptGcm(root, MakeIv(1), {}, Bytes(32, 0))), Code::kInternal);
  // An encrypt-capable key works, so the refusal is about the root's attributes.
  auto data_key = token_->UnwrapAesKey(root, token_->GenerateWrappedAesKey(root).value());
  ASSERT_TRUE(data_key.has_value());
  auto ok = token_->EncryptGcm(*data_key, MakeIv(1), {}, AsBytes("data"));
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(CodeOf(token_->DecryptGcm(*data_key, MakeIv(1), {}, *ok)), Code::kOk);
}

TEST_F(TokenTest, UnwrapUnderADestroyedRootIsNotFound) {
  const ObjectHandle root = Root();
  auto wrapped = token_->GenerateWrappedAesKey(root);
  ASSERT_TRUE(wrapped.has_value());
  ASSERT_TRUE(token_->DestroyObject(root).ok());
  auto key = token_->UnwrapAesKey(root, *wrapped);
  ASSERT_EQ(CodeOf(key), Code::kNotFound);
  EXPECT_EQ(CodeOf(token_->GenerateWrappedAesKey(root)), Code::kNotFound);
}

// Wrapped keys come from the keystore, never from a caller: bytes that do not
// unwrap mean a corrupt keystore or the wrong root, an INTERNAL failure
// (SoftHSM2 answers CKR_GENERAL_ERROR). Only a length RFC 5649 cannot have is
// reported by the module as CKR_WRAPPED_KEY_LEN_RANGE.
TEST_F(TokenTest, UnwrapUnderAnotherRootFails) {
  const ObjectHandle a = Root();
  auto other = token_->CreateTokenWrappingKey("other-root");
  ASSERT_TRUE(other.has_value());
  auto wrapped = token_->GenerateWrappedAesKey(a);
  ASSERT_TRUE(wrapped.has_value());
  auto key = token_->UnwrapAesKey(*other, *wrapped);
  ASSERT_EQ(CodeOf(key), Code::kInternal);
  EXPECT_THAT(key.error().message(), HasSubstr("C_UnwrapKey"));
  EXPECT_EQ(CodeOf(token_->UnwrapAesKey(a, *wrapped)), Code::kOk);
}

TEST_F(TokenTest, UnwrapOfTamperedBytesFails) {
  const ObjectHandle root = Root();
  auto wrapped = token_->GenerateWrappedAesKey(root);
  ASSERT_TRUE(wrapped.has_value());
  for (size_t i = 0; i < wrapped->size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = *wrapped;
      bad[i] ^= static_cast<uint8_t>(1 << bit);
      ASSERT_EQ(CodeOf(token_->UnwrapAesKey(root, bad)), Code::kInternal)
          << "byte " << i << " bit " << bit;
    }
  }
  for (size_t n = 0; n < wrapped->size(); ++n) {
    // Stored bytes that do not unwrap are a damaged keystore, whatever the length.
    auto key = token_->UnwrapAesKey(root, std::span(*wrapped).first(n));
    EXPECT_EQ(CodeOf(key), Code::kInternal) << "length " << n;
  }
  EXPECT_EQ(CodeOf(token_->UnwrapAesKey(root, *wrapped)), Code::kOk);
}

TEST_F(TokenTest, EncryptWithADestroyedKeyIsNotFound) {
  const ObjectHandle key = DataKey(Root());
  ASSERT_TRUE(token_->DestroyObject(key).ok());
  EXPECT_EQ(CodeOf(token_->EncryptGcm(key, MakeIv(1), {}, AsBytes("x"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(token_->DecryptGcm(key, MakeIv(1), {}, Bytes(17, 0))), Code::kNotFound);
}

TEST_F(TokenTest, HmacSha256IsDeterministicAndThirtyTwoBytes) {
  auto key = token_->CreateTokenHmacKey("audit");
  ASSERT_TRUE(key.has_value());
  auto a = token_->HmacSha256(*key, AsBytes("audit record 1"));
  auto b = token_->HmacSha256(*key, AsBytes("audit record 1"));
  auto c = token_->HmacSha256(*key, AsBytes("audit record 2"));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->size(), 32u);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  auto other_key = token_->CreateTokenHmacKey("audit-2");
  ASSERT_TRUE(other_key.has_value());
  EXPECT_NE(*token_->HmacSha256(*other_key, AsBytes("audit record 1")), *a);
}

TEST_F(TokenTest, HmacSha256OfNothingWorks) {
  auto key = token_->CreateTokenHmacKey("audit");
  ASSERT_TRUE(key.has_value());
  auto mac = token_->HmacSha256(*key, std::span<const uint8_t>());
  ASSERT_TRUE(mac.has_value()) << mac.error();
  EXPECT_EQ(mac->size(), 32u);
}

TEST_F(TokenTest, HmacSha256RefusesAnAesKey) {
  EXPECT_EQ(CodeOf(token_->HmacSha256(Root(), AsBytes("x"))), Code::kInternal);
}

TEST_F(TokenTest, GenerateRandomFillsTheBuffer) {
  std::vector<uint8_t> a(4096), b(4096);
  ASSERT_TRUE(token_->GenerateRandom(a).ok());
  ASSERT_TRUE(token_->GenerateRandom(b).ok());
  EXPECT_NE(a, b);
  EXPECT_GT(std::count(a.begin(), a.end(), 0), 0);  // about 16 zero bytes expected
  EXPECT_LT(std::count(a.begin(), a.end(), 0), 100);
  EXPECT_TRUE(token_->GenerateRandom({}).ok());
}

TEST_F(TokenTest, ConcurrentGcmFromEightThreadsOnFourSessions) {
  const ObjectHandle key = DataKey(Root());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string plaintext = "thread " + std::to_string(t) + " item " + std::to_string(i);
        const Iv iv = MakeIv(static_cast<uint8_t>(t * 16 + i));
        auto sealed = token_->EncryptGcm(key, iv, AsBytes("aad"), AsBytes(plaintext));
        if (!sealed) {
          ++failures;
          continue;
        }
        auto opened = token_->DecryptGcm(key, iv, AsBytes("aad"), *sealed);
        if (!opened || !opened->EqualsInConstantTime(AsBytes(plaintext))) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace kmsd
