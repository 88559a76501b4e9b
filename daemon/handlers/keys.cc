// Key handlers: key.create, key.describe, key.list, key.rotate,
// key.list-versions (state changes are in lifecycle.cc).
#include "daemon/handlers/handler.h"
#include "daemon/tenant_rules.h"

namespace kmsd {
namespace {

Result<ops::KeyDescription> Create(Call& call, const ops::KeyCreateRequest& request) {
  std::optional<uint64_t> max_keys;
  if (call.deps().rules != nullptr) {
    ASSIGN_OR_RETURN(max_keys, call.deps().rules->MaxKeys(call.tenant()));
  }
  ASSIGN_OR_RETURN(KeyInfo key,
                   call.hierarchy().CreateKey(call.tenant(), request.name,
                                              request.description.value_or(""), max_keys));
  return DescribeKey(key);
}

Result<ops::KeyDescription> Describe(Call& call, const ops::KeyArg& request) {
  ASSIGN_OR_RETURN(KeyInfo key, call.hierarchy().DescribeKey(call.tenant(), request.key));
  return DescribeKey(key);
}

Result<ops::KeyListReply> List(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(std::vector<KeyInfo> keys, call.hierarchy().ListKeys(call.tenant()));
  ops::KeyListReply out;
  for (const auto& key : keys) out.keys.push_back(DescribeKey(key));
  return out;
}

Result<ops::KeyDescription> Rotate(Call& call, const ops::KeyArg& request) {
  ASSIGN_OR_RETURN(KeyInfo key, call.hierarchy().RotateKey(call.tenant(), request.key));
  call.Touched(KeyIdToHex(key.id), key.name, key.latest_version);
  return DescribeKey(key);
}

Result<ops::VersionListReply> ListVersions(Call& call, const ops::KeyArg& request) {
  ASSIGN_OR_RETURN(std::vector<VersionInfo> versions,
                   call.hierarchy().ListVersions(call.tenant(), request.key));
  ops::VersionListReply out;
  for (const auto& version : versions) {
    out.versions.push_back({.version = version.version,
                            .created_at = version.created_at,
                            .encryptions = version.encryptions});
  }
  return out;
}

}  // namespace

void AddKeyHandlers(HandlerTable& table) {
  table.Add<ops::KeyCreate, Create>();
  table.Add<ops::KeyDescribe, Describe>();
  table.Add<ops::KeyList, List>();
  table.Add<ops::KeyRotate, Rotate>();
  table.Add<ops::KeyListVersions, ListVersions>();
}

}  // namespace kmsd
