// Due work, run at start-up and then periodically (RunDueWork): shredding
// keys and tenants whose pending window has ended, rotating keys whose
// rotation period has passed since their newest version (once, however long
// the daemon was down), and destroying token objects still queued.
#include <spdlog/spdlog.h>

#include "keystore/access_directory.h"
#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "keystore/internal/destroy_queue.h"

namespace kmsd {
namespace {

using keystore_internal::Key;
using keystore_internal::Tenant;

struct DueWork {
  std::vector<const Tenant*> tenants_to_shred;
  std::vector<const Key*> keys_to_shred;
  std::vector<const Key*> keys_to_rotate;
};

bool RotationDue(const Tenant& tenant, const Key& key, int64_t now) {
  const std::optional<int64_t> period = keystore_internal::EffectiveRotationPeriod(tenant, key);
  return !tenant.record.deletion_due_at &&  // a pending tenant does not rotate
         key.record.enabled && period && key.versions.back()->created_at + *period <= now &&
         keystore_internal::WrappingKeyOf(tenant, key).has_value();  // not when shredded
}

// What is due at `now` (the catalog's read lock held).
DueWork FindDueWork(const keystore_internal::Catalog& catalog, int64_t now) {
  DueWork due;
  for (const auto& [name, tenant] : catalog.tenants()) {
    if (tenant->record.deletion_due_at && *tenant->record.deletion_due_at <= now) {
      due.tenants_to_shred.push_back(tenant.get());
      continue;
    }
    for (const auto& [key_name, key] : tenant->keys) {
      if (key->record.deletion_due_at && *key->record.deletion_due_at <= now) {
        due.keys_to_shred.push_back(key.get());
      } else if (RotationDue(*tenant, *key, now)) {
        due.keys_to_rotate.push_back(key.get());
      }
    }
  }
  return due;
}

}  // namespace

DueWorkReport KeyHierarchy::RunDueWork() {
  DueWorkReport report;
  {
    std::lock_guard write(write_mu_);
    const int64_t now = clock_.NowSeconds();
    DueWork due;
    {
      auto lock = catalog_->ReadLock();
      due = FindDueWork(*catalog_, now);
    }
    for (const Tenant* tenant : due.tenants_to_shred) {
      if (Status status = ShredTenant(*tenant, now); status.ok()) {
        ++report.tenants_shredded;
      } else {
        spdlog::error("tenant shredding failed (will retry): {}", status.ToString());
        report.shredding_failed.push_back(tenant->record.name + ": " + status.ToString());
      }
    }
    for (const Key* key : due.keys_to_shred) {
      if (Status status = ShredKey(*key, now); status.ok()) {
        ++report.keys_shredded;
      } else {
        spdlog::error("key shredding failed (will retry): {}", status.ToString());
        report.shredding_failed.push_back(key->record.tenant + "/" + key->record.name + ": " +
                                          status.ToString());
      }
    }
    for (const Key* key : due.keys_to_rotate) {
      if (Status status = AddVersion(*key); status.ok()) {
        ++report.keys_rotated;
      } else {
        spdlog::error("tenant {}: automatic rotation of key {} failed (will retry): {}",
                      key->record.tenant, key->record.name, status.ToString());
        report.rotations_failed.push_back(key->record.tenant + "/" + key->record.name + ": " +
                                          status.ToString());
      }
    }
  }
  report.token_objects_destroyed = destroy_queue_->DestroyQueued();
  if (Status status = access_->FlushUsage(); !status.ok()) {
    spdlog::error("recording API keys' last use failed (will retry): {}", status.ToString());
  }
  return report;
}

}  // namespace kmsd
