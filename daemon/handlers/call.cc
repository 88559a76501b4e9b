// Call's resource checks (handler.h): the authorize stage asked about the
// one key or alias a request acts on. The key is looked up only when the
// caller holds the permission on some keys or aliases only; for admins and
// holders of the permission everywhere the stage decides from the name.
#include "daemon/handlers/handler.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

ResourceFacts KeyNamed(std::string_view name, const EncryptionContext* context) {
  ResourceFacts facts;
  facts.kind = Resource::kKey;
  facts.name = name;
  facts.context = context;
  return facts;
}

}  // namespace

bool Call::NeedsFacts(Permission permission) const {
  const PrincipalIdentity* caller = principal();
  return caller != nullptr && !caller->permissions.test(static_cast<size_t>(permission));
}

Status Call::AuthorizeFound(Permission permission, Result<KeyInfo> key,
                            const EncryptionContext* context) {
  RETURN_IF_ERROR(StatusOf(key));
  ResourceFacts facts = KeyNamed(key->name, context);
  facts.key_id = key->id;
  facts.aliases = key->aliases;
  return authorize_(context_, permission, facts);
}

Status Call::AuthorizeKey(Permission permission, std::string_view key_ref,
                          const EncryptionContext* context) {
  if (NeedsFacts(permission)) {
    RETURN_IF_ERROR(ValidateKeyReference(key_ref));
    return AuthorizeFound(permission, hierarchy().DescribeKey(tenant(), key_ref), context);
  }
  return authorize_(context_, permission, KeyNamed(key_ref, context));
}

Status Call::AuthorizeKeyId(Permission permission, const KeyId& key_id,
                            const EncryptionContext* context) {
  if (NeedsFacts(permission)) {
    return AuthorizeFound(permission, hierarchy().DescribeKeyById(tenant(), key_id), context);
  }
  const std::string hex = KeyIdToHex(key_id);
  ResourceFacts facts = KeyNamed(hex, context);
  facts.key_id = key_id;
  return authorize_(context_, permission, facts);
}

Status Call::AuthorizeAlias(Permission permission, std::string_view alias) {
  if (NeedsFacts(permission)) RETURN_IF_ERROR(ValidateAliasName(alias));
  ResourceFacts facts;
  facts.kind = Resource::kAlias;
  facts.name = alias;
  return authorize_(context_, permission, facts);
}

}  // namespace kmsd
