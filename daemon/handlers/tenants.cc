// Tenant handlers: tenant.create, tenant.describe, tenant.list (the
// deletion operations are in lifecycle.cc).
#include "daemon/handlers/handler.h"
#include "daemon/tenant_rules.h"

namespace kmsd {
namespace {

Result<ops::TenantDescription> Create(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(TenantInfo info, call.hierarchy().CreateTenant(call.tenant()));
  return DescribeTenant(info);
}

// With the policy's storage quotas, which the client library enforces.
Result<ops::TenantDescription> Describe(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(TenantInfo info, call.hierarchy().DescribeTenant(call.tenant()));
  ops::TenantDescription out = DescribeTenant(info);
  if (call.deps().rules != nullptr) {
    ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicy> policy,
                     call.deps().rules->PolicyOf(call.tenant()));
    if (policy != nullptr) {
      out.max_data_size = policy->max_data_size;
      out.max_file_count = policy->max_file_count;
      out.max_file_size = policy->max_file_size;
    }
  }
  return out;
}

Result<ops::TenantListReply> List(Call& call, const NoFields&) {
  ops::TenantListReply out;
  for (const auto& tenant : call.hierarchy().ListTenants()) {
    out.tenants.push_back({.name = tenant.name,
                           .created_at = tenant.created_at,
                           .state = std::string(TenantState(tenant))});
  }
  return out;
}

}  // namespace

void AddTenantHandlers(HandlerTable& table) {
  table.Add<ops::TenantCreate, Create>();
  table.Add<ops::TenantDescribe, Describe>();
  table.Add<ops::TenantList, List>();
}

}  // namespace kmsd
