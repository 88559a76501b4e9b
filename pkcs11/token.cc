#include "pkcs11/token.h"

#include <cstring>
#include <map>

#include "pkcs11/internal/key_templates.h"
#include "pkcs11/internal/text_fields.h"

namespace kmsd::pkcs11 {
namespace {

constexpr CK_ULONG kAesKeyBytes = 32;
constexpr CK_ULONG kGcmTagBits = 128;

using internal::Trim;

// Modules reject a NULL input pointer even with length 0 (SoftHSM2 2.6:
// CKR_ARGUMENTS_BAD), and an empty std::vector's data() is NULL.
CK_BYTE* InputPointer(std::span<const uint8_t> bytes) {
  static CK_BYTE empty = 0;  // never written: the module reads 0 bytes of it
  return bytes.empty() ? &empty : const_cast<CK_BYTE*>(bytes.data());
}

CK_GCM_PARAMS GcmParams(const Iv& iv, std::span<const uint8_t> aad) {
  CK_GCM_PARAMS params{};
  params.pIv = const_cast<CK_BYTE*>(iv.data());
  params.ulIvLen = iv.size();
  params.ulIvBits = iv.size() * 8;  // some modules read bits, some bytes (NOTES.md)
  params.pAAD = const_cast<CK_BYTE*>(aad.data());
  params.ulAADLen = aad.size();
  params.ulTagBits = kGcmTagBits;
  return params;
}

}  // namespace

// Returns its session to the pool when it goes out of scope.
class Token::PooledSession {
 public:
  PooledSession(Token* token, CK_SESSION_HANDLE session) : token_(token), session_(session) {}
  ~PooledSession() { token_->ReleaseSession(session_); }
  PooledSession(const PooledSession&) = delete;
  PooledSession& operator=(const PooledSession&) = delete;
  CK_SESSION_HANDLE get() const { return session_; }

 private:
  Token* token_;
  CK_SESSION_HANDLE session_;
};

Result<std::vector<ObjectHandle>> Token::FindTokenSecretKeys(
    std::optional<std::string_view> label) {
  return FindTokenObjects(CKO_SECRET_KEY, label);
}

Result<std::vector<ObjectHandle>> Token::FindTokenObjects(CK_OBJECT_CLASS cls,
                                                          std::optional<std::string_view> label) {
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE query[] = {{CKA_CLASS, &cls, sizeof cls},
                          {CKA_TOKEN, &yes, sizeof yes},
                          {CKA_LABEL, const_cast<char*>(label.value_or("").data()),
                           static_cast<CK_ULONG>(label.value_or("").size())}};
  RETURN_IF_ERROR(
      Check(fn_->C_FindObjectsInit(holder_session_, query, label ? 3 : 2), "C_FindObjectsInit"));
  std::vector<ObjectHandle> handles;
  for (;;) {
    CK_OBJECT_HANDLE batch[64];
    CK_ULONG found = 0;
    CK_RV rv = fn_->C_FindObjects(holder_session_, batch, 64, &found);
    if (rv != CKR_OK) {
      fn_->C_FindObjectsFinal(holder_session_);
      return Error(Check(rv, "C_FindObjects"));
    }
    if (found == 0) break;
    handles.insert(handles.end(), batch, batch + found);
  }
  RETURN_IF_ERROR(Check(fn_->C_FindObjectsFinal(holder_session_), "C_FindObjectsFinal"));
  return handles;
}

Result<std::vector<ObjectHandle>> Token::FindTokenSecretKeysByLabel(std::string_view label) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(std::vector<ObjectHandle> handles, FindTokenSecretKeys(label));
  for (ObjectHandle& handle : handles) handle = Track(handle, CKO_SECRET_KEY, label);
  return handles;
}

Result<std::vector<TokenObject>> Token::ListTokenSecretKeys() {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(std::vector<ObjectHandle> handles, FindTokenSecretKeys(std::nullopt));
  std::vector<TokenObject> objects;
  for (ObjectHandle handle : handles) {
    CK_ATTRIBUTE attr = {CKA_LABEL, nullptr, 0};
    if (fn_->C_GetAttributeValue(holder_session_, handle, &attr, 1) != CKR_OK) continue;
    std::string label(attr.ulValueLen, '\0');
    attr.pValue = label.data();
    if (fn_->C_GetAttributeValue(holder_session_, handle, &attr, 1) != CKR_OK) continue;
    const ObjectHandle held = Track(handle, CKO_SECRET_KEY, label);
    objects.push_back({std::move(label), held});
  }
  return objects;
}

Result<ObjectHandle> Token::GenerateKey(std::vector<CK_ATTRIBUTE>& attributes,
                                        CK_MECHANISM_TYPE mech) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  return GenerateKeyLocked(attributes, mech);
}

Result<ObjectHandle> Token::GenerateKeyLocked(std::vector<CK_ATTRIBUTE>& attributes,
                                              CK_MECHANISM_TYPE mech) {
  CK_MECHANISM mechanism = {mech, nullptr, 0};
  CK_OBJECT_HANDLE handle;
  RETURN_IF_ERROR(Check(fn_->C_GenerateKey(holder_session_, &mechanism, attributes.data(),
                                           attributes.size(), &handle),
                        "C_GenerateKey"));
  return handle;
}

Result<ObjectHandle> Token::CreateTokenWrappingKey(std::string_view label) {
  internal::KeyTemplate t = internal::WrappingKeyTemplate(label);
  ASSIGN_OR_RETURN(ObjectHandle handle, GenerateKey(t.attributes(), CKM_AES_KEY_GEN));
  return Track(handle, CKO_SECRET_KEY, label);
}

Result<ObjectHandle> Token::CreateTokenHmacKey(std::string_view label) {
  internal::KeyTemplate t = internal::HmacKeyTemplate(label);
  ASSIGN_OR_RETURN(ObjectHandle handle, GenerateKey(t.attributes(), CKM_GENERIC_SECRET_KEY_GEN));
  return Track(handle, CKO_SECRET_KEY, label);
}

Result<ObjectHandle> Token::TEST_CreateUnhardenedWrappingKey(std::string_view label) {
  internal::KeyTemplate t = internal::UnhardenedWrappingKeyTemplate(label);
  ASSIGN_OR_RETURN(ObjectHandle handle, GenerateKey(t.attributes(), CKM_AES_KEY_GEN));
  return Track(handle, CKO_SECRET_KEY, label);
}

Status Token::DestroyObject(ObjectHandle handle) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  RETURN_IF_ERROR(Check(fn_->C_DestroyObject(holder_session_, Current(handle)), "C_DestroyObject"));
  Untrack(handle);
  return OkStatus();
}

Result<std::string> Token::ReadAttributeLocked(ObjectHandle key, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr = {type, nullptr, 0};
  RETURN_IF_ERROR(
      Check(fn_->C_GetAttributeValue(holder_session_, key, &attr, 1), "C_GetAttributeValue"));
  std::string value(attr.ulValueLen, '\0');
  attr.pValue = value.data();
  RETURN_IF_ERROR(
      Check(fn_->C_GetAttributeValue(holder_session_, key, &attr, 1), "C_GetAttributeValue"));
  value.resize(attr.ulValueLen);
  return value;
}

Result<std::map<CK_ATTRIBUTE_TYPE, std::string>> Token::ReadTemplateLocked(ObjectHandle key,
                                                                           CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr = {type, nullptr, 0};
  RETURN_IF_ERROR(
      Check(fn_->C_GetAttributeValue(holder_session_, key, &attr, 1), "C_GetAttributeValue"));
  // PKCS#11 2.40 section 5.2: an array attribute is read in three steps:
  // its size, then each element's type and length, then the values.
  std::vector<CK_ATTRIBUTE> elements(attr.ulValueLen / sizeof(CK_ATTRIBUTE));
  std::map<CK_ATTRIBUTE_TYPE, std::string> out;
  if (elements.empty()) return out;
  for (CK_ATTRIBUTE& e : elements) e = {0, nullptr, 0};
  attr.pValue = elements.data();
  RETURN_IF_ERROR(
      Check(fn_->C_GetAttributeValue(holder_session_, key, &attr, 1), "C_GetAttributeValue"));
  std::vector<std::string> values;
  values.reserve(elements.size());
  for (CK_ATTRIBUTE& e : elements) {
    e.pValue = values.emplace_back(e.ulValueLen, '\0').data();
  }
  RETURN_IF_ERROR(
      Check(fn_->C_GetAttributeValue(holder_session_, key, &attr, 1), "C_GetAttributeValue"));
  for (size_t i = 0; i < elements.size(); ++i) {
    out[elements[i].type] = values[i].substr(0, elements[i].ulValueLen);
  }
  return out;
}

Result<bool> Token::IsHardened(ObjectHandle held) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  const ObjectHandle key = Current(held);
  ASSIGN_OR_RETURN(std::string type_bytes, ReadAttributeLocked(key, CKA_KEY_TYPE));
  CK_KEY_TYPE type = 0;
  if (type_bytes.size() != sizeof type) return false;
  std::memcpy(&type, type_bytes.data(), sizeof type);
  ASSIGN_OR_RETURN(std::string label, ReadAttributeLocked(key, CKA_LABEL));
  const internal::KeyTemplate expected = type == CKK_GENERIC_SECRET
                                             ? internal::HmacKeyTemplate(label)
                                             : internal::WrappingKeyTemplate(label);
  for (const auto& [attribute, value] : expected.Values()) {
    ASSIGN_OR_RETURN(std::string actual, ReadAttributeLocked(key, attribute));
    if (actual != value) return false;
  }
  for (CK_ATTRIBUTE_TYPE nested : expected.NestedTypes()) {
    const internal::KeyTemplate& inner =
        nested == CKA_UNWRAP_TEMPLATE ? internal::UnwrapTemplate() : internal::WrapTemplate();
    ASSIGN_OR_RETURN(auto actual, ReadTemplateLocked(key, nested));
    if (actual != inner.Values()) return false;
  }
  return true;
}

Result<Bytes> Token::WrapAndDestroyLocked(ObjectHandle wrapping_key, ObjectHandle key) {
  CK_MECHANISM mechanism = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  Bytes wrapped(kAesKeyBytes + 16);
  CK_ULONG wrapped_len = wrapped.size();
  Status status = Check(
      fn_->C_WrapKey(holder_session_, &mechanism, wrapping_key, key, wrapped.data(), &wrapped_len),
      "C_WrapKey");
  fn_->C_DestroyObject(holder_session_, key);
  RETURN_IF_ERROR(status);
  wrapped.resize(wrapped_len);
  return wrapped;
}

Result<Bytes> Token::GenerateWrappedAesKey(ObjectHandle wrapping_key) {
  // Extractable only so that it can leave wrapped: a session object of the
  // holder session (invisible to other applications), with no usage, wrapped
  // and destroyed under one lock.
  internal::KeyTemplate t = internal::VersionToWrapTemplate();
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(ObjectHandle fresh, GenerateKeyLocked(t.attributes(), CKM_AES_KEY_GEN));
  return WrapAndDestroyLocked(Current(wrapping_key), fresh);
}

Result<ObjectHandle> Token::UnwrapLocked(ObjectHandle wrapping_key,
                                         std::span<const uint8_t> wrapped,
                                         std::vector<CK_ATTRIBUTE>& attributes) {
  CK_MECHANISM mechanism = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  CK_OBJECT_HANDLE handle;
  Status status =
      Check(fn_->C_UnwrapKey(holder_session_, &mechanism, wrapping_key, InputPointer(wrapped),
                             wrapped.size(), attributes.data(), attributes.size(), &handle),
            "C_UnwrapKey");
  // Wrapped bytes come from the keystore, never from a caller: bytes that do
  // not unwrap are a damaged keystore (INTERNAL), not a bad ciphertext.
  if (status.code() == Code::kInvalidCiphertext) {
    return Error(Code::kInternal, "stored key version does not unwrap: " + status.message());
  }
  RETURN_IF_ERROR(status);
  return handle;
}

Result<KeyRef> Token::UnwrapAesKey(ObjectHandle wrapping_key, std::span<const uint8_t> wrapped) {
  internal::KeyTemplate t = internal::UsableVersionTemplate();
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(ObjectHandle handle,
                   UnwrapLocked(Current(wrapping_key), wrapped, t.attributes()));
  // Under holder_mu_: no reconnection can come between the unwrap and this.
  return KeyRef(handle, generation());
}

Result<Bytes> Token::RewrapAesKey(ObjectHandle old_key, std::span<const uint8_t> wrapped,
                                  ObjectHandle new_key) {
  internal::KeyTemplate t = internal::VersionToRewrapTemplate();
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(ObjectHandle version, UnwrapLocked(Current(old_key), wrapped, t.attributes()));
  return WrapAndDestroyLocked(Current(new_key), version);
}

Result<Bytes> Token::EncryptGcm(const KeyRef& key, const Iv& iv, std::span<const uint8_t> aad,
                                std::span<const uint8_t> plaintext) {
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mechanism = {CKM_AES_GCM, &params, sizeof params};
  ASSIGN_OR_RETURN(Lease lease, AcquireSession(&key));
  PooledSession session(this, lease.session);
  RETURN_IF_ERROR(
      Check(fn_->C_EncryptInit(session.get(), &mechanism, HandleOf(key)), "C_EncryptInit"));
  Bytes out(plaintext.size() + kGcmTagBits / 8);
  CK_ULONG out_len = out.size();
  RETURN_IF_ERROR(Check(fn_->C_Encrypt(session.get(), InputPointer(plaintext), plaintext.size(),
                                       out.data(), &out_len),
                        "C_Encrypt"));
  out.resize(out_len);
  return out;
}

Result<SecretBuffer> Token::DecryptGcm(const KeyRef& key, const Iv& iv,
                                       std::span<const uint8_t> aad,
                                       std::span<const uint8_t> ciphertext_and_tag) {
  if (ciphertext_and_tag.size() < kGcmTagBits / 8) {
    return Error(Code::kInvalidCiphertext, "ciphertext is shorter than the GCM tag");
  }
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mechanism = {CKM_AES_GCM, &params, sizeof params};
  ASSIGN_OR_RETURN(Lease lease, AcquireSession(&key));
  PooledSession session(this, lease.session);
  RETURN_IF_ERROR(
      Check(fn_->C_DecryptInit(session.get(), &mechanism, HandleOf(key)), "C_DecryptInit"));
  // Room for the whole input: some modules want it for GCM's buffering.
  SecretBuffer plaintext(std::max<size_t>(ciphertext_and_tag.size(), 1));
  CK_ULONG out_len = plaintext.size();
  CK_RV rv = fn_->C_Decrypt(session.get(), const_cast<CK_BYTE*>(ciphertext_and_tag.data()),
                            ciphertext_and_tag.size(), plaintext.RevealMutableData(), &out_len);
  // SoftHSM2 2.6 answers a GCM tag mismatch with CKR_GENERAL_ERROR, not
  // CKR_ENCRYPTED_DATA_INVALID; the key and session were just shown to work
  // by C_DecryptInit, so both mean the ciphertext did not authenticate
  // (unless the token stopped answering meanwhile).
  if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
      (rv == CKR_GENERAL_ERROR && Answers())) {
    return Error(Code::kInvalidCiphertext, "ciphertext failed authentication");
  }
  RETURN_IF_ERROR(Check(rv, "C_Decrypt"));
  plaintext.Shrink(out_len);
  return plaintext;
}

Result<Bytes> Token::HmacSha256(ObjectHandle key, std::span<const uint8_t> data) {
  CK_MECHANISM mechanism = {CKM_SHA256_HMAC, nullptr, 0};
  ASSIGN_OR_RETURN(Lease lease, AcquireSession());
  PooledSession session(this, lease.session);
  RETURN_IF_ERROR(Check(fn_->C_SignInit(session.get(), &mechanism, Current(key)), "C_SignInit"));
  Bytes mac(32);
  CK_ULONG mac_len = mac.size();
  RETURN_IF_ERROR(Check(
      fn_->C_Sign(session.get(), InputPointer(data), data.size(), mac.data(), &mac_len), "C_Sign"));
  mac.resize(mac_len);
  return mac;
}

Result<std::vector<ObjectHandle>> Token::FindTokenDataObjects(std::string_view label) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(std::vector<ObjectHandle> handles, FindTokenObjects(CKO_DATA, label));
  for (ObjectHandle& handle : handles) handle = Track(handle, CKO_DATA, label);
  return handles;
}

Result<ObjectHandle> Token::CreateTokenDataObject(std::string_view label,
                                                  std::span<const uint8_t> value) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  static constexpr char kApplication[] = "kmsd";
  CK_ATTRIBUTE attributes[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &yes, sizeof yes},
      {CKA_MODIFIABLE, &yes, sizeof yes},
      {CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())},
      {CKA_APPLICATION, const_cast<char*>(kApplication), sizeof kApplication - 1},
      {CKA_VALUE, InputPointer(value), static_cast<CK_ULONG>(value.size())}};
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  CK_OBJECT_HANDLE handle;
  RETURN_IF_ERROR(Check(fn_->C_CreateObject(holder_session_, attributes,
                                            sizeof attributes / sizeof attributes[0], &handle),
                        "C_CreateObject"));
  return Track(handle, CKO_DATA, label, Bytes(value.begin(), value.end()));
}

Result<Bytes> Token::ReadDataObject(ObjectHandle object) {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  ASSIGN_OR_RETURN(std::string value, ReadAttributeLocked(Current(object), CKA_VALUE));
  Bytes bytes(value.begin(), value.end());
  {
    // Known now: it tells apart data objects with the same label at a remap.
    std::unique_lock objects(objects_mu_);
    if (auto it = tracked_.find(object); it != tracked_.end()) it->second.value = bytes;
  }
  return bytes;
}

Status Token::GenerateRandom(std::span<uint8_t> out) {
  if (out.empty()) return OkStatus();
  ASSIGN_OR_RETURN(Lease lease, AcquireSession());
  PooledSession session(this, lease.session);
  return Check(fn_->C_GenerateRandom(session.get(), out.data(), out.size()), "C_GenerateRandom");
}

}  // namespace kmsd::pkcs11
