#include "pkcs11/internal/key_templates.h"

#include <initializer_list>

namespace kmsd::pkcs11::internal {
namespace {

constexpr CK_ULONG kAesKeyBytes = 32;
constexpr CK_ULONG kHmacKeyBytes = 32;

// A secret key with every usage off but `usages`, sensitive, not modifiable,
// not copyable.
KeyTemplate SecretKey(CK_KEY_TYPE type, bool token_object, bool extractable,
                      std::initializer_list<CK_ATTRIBUTE_TYPE> usages) {
  KeyTemplate t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, type)
      .Bool(CKA_TOKEN, token_object)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, extractable)
      .Bool(CKA_COPYABLE, false);
  for (CK_ATTRIBUTE_TYPE usage :
       {CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE}) {
    bool on = false;
    for (CK_ATTRIBUTE_TYPE wanted : usages) on = on || wanted == usage;
    t.Bool(usage, on);
  }
  // Last: SoftHSM2 2.6 applies a C_UnwrapKey template in order and refuses
  // every attribute after CKA_MODIFIABLE=FALSE (CKR_ATTRIBUTE_READ_ONLY).
  t.Bool(CKA_MODIFIABLE, false);
  return t;
}

}  // namespace

KeyTemplate& KeyTemplate::Bool(CK_ATTRIBUTE_TYPE type, bool value) {
  CK_BBOOL& stored = bools_.emplace_back(value ? CK_TRUE : CK_FALSE);
  attributes_.push_back({type, &stored, sizeof stored});
  return *this;
}

KeyTemplate& KeyTemplate::Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  CK_ULONG& stored = ulongs_.emplace_back(value);
  attributes_.push_back({type, &stored, sizeof stored});
  return *this;
}

KeyTemplate& KeyTemplate::Text(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  std::string& stored = texts_.emplace_back(value);
  attributes_.push_back({type, stored.data(), static_cast<CK_ULONG>(stored.size())});
  return *this;
}

KeyTemplate& KeyTemplate::Nested(CK_ATTRIBUTE_TYPE type, KeyTemplate& nested) {
  std::vector<CK_ATTRIBUTE>& inner = nested.attributes();
  attributes_.push_back(
      {type, inner.data(), static_cast<CK_ULONG>(inner.size() * sizeof(CK_ATTRIBUTE))});
  nested_.push_back(type);
  return *this;
}

std::map<CK_ATTRIBUTE_TYPE, std::string> KeyTemplate::Values() const {
  std::map<CK_ATTRIBUTE_TYPE, std::string> values;
  for (const CK_ATTRIBUTE& a : attributes_) {
    bool nested = false;
    for (CK_ATTRIBUTE_TYPE type : nested_) nested = nested || type == a.type;
    if (nested) continue;
    values[a.type] = std::string(static_cast<const char*>(a.pValue), a.ulValueLen);
  }
  return values;
}

std::vector<CK_ATTRIBUTE_TYPE> KeyTemplate::NestedTypes() const { return nested_; }

KeyTemplate& UnwrapTemplate() {
  static KeyTemplate* unwrap = [] {
    auto* t = new KeyTemplate;
    t->Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_EXTRACTABLE, false)
        .Bool(CKA_WRAP, false)
        .Bool(CKA_UNWRAP, false)
        .Bool(CKA_DERIVE, false)
        .Bool(CKA_COPYABLE, false)
        .Bool(CKA_MODIFIABLE, false);
    return t;
  }();
  return *unwrap;
}

KeyTemplate& WrapTemplate() {
  static KeyTemplate* wrap = [] {
    auto* t = new KeyTemplate;
    t->Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_ENCRYPT, false)
        .Bool(CKA_DECRYPT, false)
        .Bool(CKA_WRAP, false)
        .Bool(CKA_UNWRAP, false)
        .Bool(CKA_DERIVE, false);
    return t;
  }();
  return *wrap;
}

KeyTemplate WrappingKeyTemplate(std::string_view label) {
  KeyTemplate t =
      SecretKey(CKK_AES, /*token_object=*/true, /*extractable=*/false, {CKA_WRAP, CKA_UNWRAP});
  t.Ulong(CKA_VALUE_LEN, kAesKeyBytes)
      .Text(CKA_LABEL, label)
      .Nested(CKA_UNWRAP_TEMPLATE, UnwrapTemplate())
      .Nested(CKA_WRAP_TEMPLATE, WrapTemplate());
  return t;
}

KeyTemplate HmacKeyTemplate(std::string_view label) {
  KeyTemplate t = SecretKey(CKK_GENERIC_SECRET, true, false, {CKA_SIGN, CKA_VERIFY});
  t.Ulong(CKA_VALUE_LEN, kHmacKeyBytes).Text(CKA_LABEL, label);
  return t;
}

KeyTemplate UnhardenedWrappingKeyTemplate(std::string_view label) {
  KeyTemplate t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, kAesKeyBytes)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_ENCRYPT, false)
      .Bool(CKA_DECRYPT, false)
      .Bool(CKA_WRAP, true)
      .Bool(CKA_UNWRAP, true)
      .Bool(CKA_SIGN, false)
      .Bool(CKA_VERIFY, false)
      .Bool(CKA_DERIVE, false)
      .Text(CKA_LABEL, label);
  return t;
}

KeyTemplate VersionToWrapTemplate() {
  KeyTemplate t = SecretKey(CKK_AES, /*token_object=*/false, /*extractable=*/true, {});
  t.Ulong(CKA_VALUE_LEN, kAesKeyBytes);
  return t;
}

KeyTemplate UsableVersionTemplate() {
  return SecretKey(CKK_AES, /*token_object=*/false, /*extractable=*/false,
                   {CKA_ENCRYPT, CKA_DECRYPT});
}

KeyTemplate VersionToRewrapTemplate() {
  return SecretKey(CKK_AES, /*token_object=*/false, /*extractable=*/true, {});
}

}  // namespace kmsd::pkcs11::internal
