// Alias handlers: alias.create, alias.update, alias.delete, alias.list.
#include "daemon/handlers/handler.h"

namespace kmsd {
namespace {

ops::AliasDescription DescribeAlias(const AliasInfo& alias) {
  return {.alias = alias.alias,
          .key = alias.key_name,
          .key_id = KeyIdToHex(alias.key_id),
          .created_at = alias.created_at,
          .updated_at = alias.updated_at};
}

Result<ops::AliasDescription> Create(Call& call, const ops::AliasRequest& request) {
  ASSIGN_OR_RETURN(AliasInfo info,
                   call.hierarchy().CreateAlias(call.tenant(), request.alias, request.key));
  return DescribeAlias(info);
}

Result<ops::AliasDescription> Update(Call& call, const ops::AliasRequest& request) {
  ASSIGN_OR_RETURN(AliasInfo info,
                   call.hierarchy().UpdateAlias(call.tenant(), request.alias, request.key));
  return DescribeAlias(info);
}

Result<NoFields> Delete(Call& call, const ops::AliasArg& request) {
  RETURN_IF_ERROR(call.hierarchy().DeleteAlias(call.tenant(), request.alias));
  return NoFields{};
}

Result<ops::AliasListReply> List(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(std::vector<AliasInfo> aliases, call.hierarchy().ListAliases(call.tenant()));
  ops::AliasListReply out;
  for (const auto& alias : aliases) out.aliases.push_back(DescribeAlias(alias));
  return out;
}

}  // namespace

void AddAliasHandlers(HandlerTable& table) {
  table.Add<ops::AliasCreate, Create>();
  table.Add<ops::AliasUpdate, Update>();
  table.Add<ops::AliasDelete, Delete>();
  table.Add<ops::AliasList, List>();
}

}  // namespace kmsd
