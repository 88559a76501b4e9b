// AccessDirectory's tenant policies (documents as put, one record per
// tenant, replaced whole) and principals' wrapped TOTP seeds
// (access_directory.h).
#include "keystore/access_directory.h"

namespace kmsd {

Result<std::shared_ptr<const TenantPolicyRecord>> AccessDirectory::PutTenantPolicy(
    std::string_view tenant, std::string document) {
  std::lock_guard write(write_mu_);
  auto record = std::make_shared<const TenantPolicyRecord>(TenantPolicyRecord{
      .tenant = std::string(tenant), .document = std::move(document), .updated_at = Now()});
  RETURN_IF_ERROR(store_.WriteAccess(store_change::PutTenantPolicy{*record}));
  std::unique_lock lock(mu_);
  policies_[record->tenant] = record;
  policy_count_.store(policies_.size(), std::memory_order_release);
  return record;
}

std::shared_ptr<const TenantPolicyRecord> AccessDirectory::PolicyOf(std::string_view tenant) const {
  std::shared_lock lock(mu_);
  auto it = policies_.find(tenant);
  return it == policies_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const TenantPolicyRecord>> AccessDirectory::AllPolicies() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const TenantPolicyRecord>> out;
  out.reserve(policies_.size());
  for (const auto& [tenant, record] : policies_) out.push_back(record);
  return out;
}

Status AccessDirectory::SetMfaSeed(std::string_view tenant, std::string_view principal,
                                   Bytes wrapped) {
  std::lock_guard write(write_mu_);
  MfaSeedRecord seed{.tenant = std::string(tenant),
                     .principal = std::string(principal),
                     .wrapped = std::move(wrapped),
                     .created_at = Now()};
  RETURN_IF_ERROR(store_.WriteAccess(store_change::SetMfaSeed{seed}));
  std::unique_lock lock(mu_);
  PrincipalKey key{seed.tenant, seed.principal};
  mfa_seeds_[std::move(key)] = std::move(seed);
  return OkStatus();
}

std::optional<MfaSeedRecord> AccessDirectory::MfaSeedOf(std::string_view tenant,
                                                        std::string_view principal) const {
  std::shared_lock lock(mu_);
  auto it = mfa_seeds_.find(PrincipalKey{tenant, principal});
  if (it == mfa_seeds_.end()) return std::nullopt;
  return it->second;
}

}  // namespace kmsd
