#include "daemon/handlers/handler.h"
#include "protocol/limits.h"

namespace kmsd {

std::optional<OpId> HandlerTable::Missing() const {
  for (size_t i = 0; i < handlers_.size(); ++i) {
    if (handlers_[i] == nullptr) return static_cast<OpId>(i);
  }
  return std::nullopt;
}

HandlerTable AllHandlers() {
  HandlerTable table;
  AddServiceHandlers(table);
  AddTenantHandlers(table);
  AddKeyHandlers(table);
  AddAliasHandlers(table);
  AddLifecycleHandlers(table);
  AddCryptoHandlers(table);
  AddAccessHandlers(table);
  AddRoleAndGrantHandlers(table);
  AddPolicyHandlers(table);
  AddSessionHandlers(table);
  AddAuditHandlers(table);
  return table;
}

ops::KeyDescription DescribeKey(const KeyInfo& key) {
  ops::KeyDescription out;
  out.id = KeyIdToHex(key.id);
  out.name = key.name;
  out.tenant = key.tenant;
  out.description = key.description;
  out.created_at = key.created_at;
  out.enabled = key.enabled;
  out.state = std::string(KeyStateName(key.state));
  out.deletion_date = key.deletion_date;
  out.latest_version = key.latest_version;
  out.min_decryption_version = key.min_decryption_version;
  out.rotation_period_seconds = key.rotation_period_seconds;
  // Also set by the tenant policy's key_rotation_days alone.
  out.next_rotation_at = key.next_rotation_at;
  out.aliases = key.aliases;
  return out;
}

Status CheckNumberOfBytes(uint64_t number_of_bytes) {
  if (number_of_bytes >= 1 && number_of_bytes <= kMaxRandomBytes) return OkStatus();
  return Status(Code::kInvalidArgument,
                "number_of_bytes must be 1 to " + std::to_string(kMaxRandomBytes));
}

std::string_view TenantState(const TenantInfo& tenant) {
  return tenant.deletion_date ? "pending_deletion" : "active";
}

ops::TenantDescription DescribeTenant(const TenantInfo& tenant) {
  return {.name = tenant.name,
          .created_at = tenant.created_at,
          .state = std::string(TenantState(tenant)),
          .deletion_date = tenant.deletion_date,
          .keys = tenant.key_count,
          .aliases = tenant.alias_count,
          .max_data_size = std::nullopt,
          .max_file_count = std::nullopt,
          .max_file_size = std::nullopt};
}

}  // namespace kmsd
