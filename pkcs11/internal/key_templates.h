// Key templates: the attribute sets kmsd gives every key it makes or unwraps
// (PKCS#11 2.40 sections 4.4 and 4.7-4.8), written once so that creation and
// the hardening check (Token::IsHardened) cannot drift apart.
//
// A KeyTemplate owns the values its CK_ATTRIBUTEs point at; it is move-only
// and its attributes() stay valid while it lives. The wrap and unwrap templates
// that wrapping keys carry are process-wide constants. Internal to pkcs11/.
#pragma once

#include <p11-kit/pkcs11.h>

#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kmsd::pkcs11::internal {

class KeyTemplate {
 public:
  KeyTemplate() = default;
  KeyTemplate(KeyTemplate&&) = default;
  KeyTemplate& operator=(KeyTemplate&&) = default;
  KeyTemplate(const KeyTemplate&) = delete;
  KeyTemplate& operator=(const KeyTemplate&) = delete;

  KeyTemplate& Bool(CK_ATTRIBUTE_TYPE type, bool value);
  KeyTemplate& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  KeyTemplate& Text(CK_ATTRIBUTE_TYPE type, std::string_view value);
  // An attribute whose value is another template (CKA_UNWRAP_TEMPLATE,
  // CKA_WRAP_TEMPLATE); `nested` must outlive this template.
  KeyTemplate& Nested(CK_ATTRIBUTE_TYPE type, KeyTemplate& nested);

  std::vector<CK_ATTRIBUTE>& attributes() { return attributes_; }
  const std::vector<CK_ATTRIBUTE>& attributes() const { return attributes_; }
  // Every plain (non-nested) attribute as bytes, by type.
  std::map<CK_ATTRIBUTE_TYPE, std::string> Values() const;
  // Types of the nested attributes.
  std::vector<CK_ATTRIBUTE_TYPE> NestedTypes() const;

 private:
  std::deque<CK_BBOOL> bools_;
  std::deque<CK_ULONG> ulongs_;
  std::deque<std::string> texts_;
  std::vector<CK_ATTRIBUTE> attributes_;
  std::vector<CK_ATTRIBUTE_TYPE> nested_;
};

// What a wrapping key's CKA_UNWRAP_TEMPLATE forces on everything it unwraps:
// a sensitive, non-extractable, non-wrapping, non-derivable, non-copyable,
// non-modifiable AES session object.
KeyTemplate& UnwrapTemplate();
// What a wrapping key's CKA_WRAP_TEMPLATE lets it wrap: an AES-256 session
// object that is sensitive and has no usage (a version being generated or
// moved to a new KEK).
KeyTemplate& WrapTemplate();

// Persistent keys.
KeyTemplate WrappingKeyTemplate(std::string_view label);
KeyTemplate HmacKeyTemplate(std::string_view label);
// The attributes of wrapping keys before hardening (tests of the migration).
KeyTemplate UnhardenedWrappingKeyTemplate(std::string_view label);
// Session objects: a version to be wrapped once (extractable, no usage), a
// version unwrapped for use (UnwrapTemplate plus encrypt and decrypt), and a
// version unwrapped from an unhardened key to be wrapped again.
KeyTemplate VersionToWrapTemplate();
KeyTemplate UsableVersionTemplate();
KeyTemplate VersionToRewrapTemplate();

}  // namespace kmsd::pkcs11::internal
