// Tenant policy handlers: tenant.put-policy, tenant.get-policy (the rules
// that apply them are daemon/tenant_rules.h).
#include "daemon/handlers/handler.h"
#include "daemon/tenant_rules.h"
#include "protocol/policy_types.h"

namespace kmsd {
namespace {

Result<TenantRules*> RulesOf(Call& call) {
  if (call.deps().rules == nullptr) {
    return Error(Code::kInternal, "tenant policies are not served here");
  }
  return call.deps().rules;
}

ops::PolicyDescription DescribePolicy(std::string_view tenant, const TenantPolicyView& view) {
  ops::PolicyDescription out;
  out.tenant = std::string(tenant);
  if (view.record != nullptr) {
    out.document = view.record->document;
    out.updated_at = view.record->updated_at;
  }
  for (const PolicyNote& note : view.notes) {
    out.notes.push_back({.field = note.field,
                         .kind = std::string(PolicyNoteKindName(note.kind)),
                         .note = note.note});
  }
  return out;
}

Result<ops::PolicyDescription> Put(Call& call, const ops::PolicyPutRequest& request) {
  ASSIGN_OR_RETURN(TenantRules * rules, RulesOf(call));
  // The tenant must exist (and be served) before its document is read.
  RETURN_IF_ERROR(call.hierarchy().DescribeTenant(call.tenant()));
  ASSIGN_OR_RETURN(TenantPolicyView view, rules->Put(call.tenant(), request.document,
                                                     /*may_loosen=*/call.principal() == nullptr));
  return DescribePolicy(call.tenant(), view);
}

Result<ops::PolicyDescription> Get(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(TenantRules * rules, RulesOf(call));
  RETURN_IF_ERROR(call.hierarchy().DescribeTenant(call.tenant()));
  ASSIGN_OR_RETURN(TenantPolicyView view, rules->Get(call.tenant()));
  return DescribePolicy(call.tenant(), view);
}

}  // namespace

void AddPolicyHandlers(HandlerTable& table) {
  table.Add<ops::TenantPutPolicy, Put>();
  table.Add<ops::TenantGetPolicy, Get>();
}

}  // namespace kmsd
