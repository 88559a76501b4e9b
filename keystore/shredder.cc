// Crypto-shredding (DESIGN.md invariant 2). The keystore forgets the key or
// tenant and queues its token objects in one transaction; the catalog forgets
// it next; the token objects are destroyed through the destroy queue
// (internal/destroy_queue.h), which a crash leaves to the next start.
#include <spdlog/spdlog.h>

#include "keystore/access_directory.h"
#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "keystore/internal/destroy_queue.h"

namespace kmsd {

Status KeyHierarchy::ShredKey(const Key& key, int64_t now) {
  std::vector<std::string> labels;
  if (!key.record.kek_label.empty()) {
    labels.push_back(key.record.kek_label);
  } else {
    spdlog::warn(
        "tenant {}: key {} predates per-key KEKs; it is forgotten, and its versions go "
        "with the tenant's root",
        key.record.tenant, key.record.name);
  }
  RETURN_IF_ERROR(store_->ShredKey(key.record.id, labels, now));
  destroy_queue_->Add(labels);
  const std::string tenant_name = key.record.tenant;
  const std::string key_name = key.record.name;
  const KeyId key_id = key.record.id;
  auto lock = catalog_->WriteLock();
  catalog_->ForgetKey(key);  // frees `key`
  lock.unlock();
  access_->ForgetKeyGrants(key_id);
  spdlog::info("tenant {}: key {} ({}) shredded", tenant_name, key_name, KeyIdToHex(key_id));
  return OkStatus();
}

Status KeyHierarchy::ShredTenant(const Tenant& tenant, int64_t now) {
  std::vector<std::string> labels;
  if (!tenant.record.root_label.empty()) labels.push_back(tenant.record.root_label);
  for (const auto& [name, key] : tenant.keys) {
    if (!key->record.kek_label.empty()) labels.push_back(key->record.kek_label);
  }
  const std::string tenant_name = tenant.record.name;
  RETURN_IF_ERROR(store_->ShredTenant(tenant_name, labels, now));
  destroy_queue_->Add(labels);
  auto lock = catalog_->WriteLock();
  catalog_->ForgetTenant(tenant);  // frees `tenant`
  lock.unlock();
  access_->ForgetTenant(tenant_name);
  spdlog::info("tenant {} shredded", tenant_name);
  return OkStatus();
}

}  // namespace kmsd
