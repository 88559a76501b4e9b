// KeyHierarchy's façade: opening, loading and the lifecycle options. The
// operations are in tenants.cc, keys.cc, aliases.cc, crypto.cc, shredder.cc,
// due_work.cc and kek_migration.cc; the parts they share in internal/.
#include "keystore/hierarchy.h"

#include <spdlog/spdlog.h>

#include "keystore/access_directory.h"
#include "keystore/internal/catalog.h"
#include "keystore/internal/destroy_queue.h"

namespace kmsd {
namespace {

// INVALID_ARGUMENT unless min <= seconds <= max.
Status CheckSeconds(std::string_view what, int64_t seconds, int64_t min, int64_t max) {
  if (seconds >= min && seconds <= max) return OkStatus();
  return Status(Code::kInvalidArgument, std::string(what) + " must be " + std::to_string(min) +
                                            " to " + std::to_string(max) + " seconds");
}

Status CheckLifecycleOptions(const LifecycleOptions& lifecycle) {
  if (lifecycle.min_pending_window_seconds < 1 ||
      lifecycle.min_pending_window_seconds > kDefaultMinPendingWindowSeconds) {
    return Status(Code::kInvalidArgument, "min_pending_window_seconds must be 1 to " +
                                              std::to_string(kDefaultMinPendingWindowSeconds));
  }
  if (lifecycle.min_rotation_period_seconds < 1 ||
      lifecycle.min_rotation_period_seconds > kDefaultMinRotationPeriodSeconds) {
    return Status(Code::kInvalidArgument, "min_rotation_period_seconds must be 1 to 86400");
  }
  if (lifecycle.max_encryptions_per_version < 1 ||
      lifecycle.max_encryptions_per_version > kMaxEncryptionsPerVersion) {
    return Status(Code::kInvalidArgument, "max_encryptions_per_version must be 1 to 2^32");
  }
  return OkStatus();
}

}  // namespace

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kEnabled:
      return "enabled";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kPendingDeletion:
      return "pending_deletion";
    default:
      return "unknown";
  }
}

KeyHierarchy::KeyHierarchy(pkcs11::Token& token, std::unique_ptr<KeyStore> store,
                           const Clock& clock, LifecycleOptions lifecycle)
    : token_(token),
      store_(std::move(store)),
      clock_(clock),
      lifecycle_(lifecycle),
      catalog_(std::make_unique<keystore_internal::Catalog>()),
      destroy_queue_(std::make_unique<keystore_internal::DestroyQueue>(token_, *store_)) {}

// Unwrapped versions are destroyed with the catalog, when no request holds them.
KeyHierarchy::~KeyHierarchy() = default;

Result<std::unique_ptr<KeyHierarchy>> KeyHierarchy::Open(pkcs11::Token& token,
                                                         std::unique_ptr<KeyStore> store,
                                                         const Clock& clock,
                                                         LifecycleOptions lifecycle) {
  RETURN_IF_ERROR(CheckLifecycleOptions(lifecycle));
  std::unique_ptr<KeyHierarchy> hierarchy(
      new KeyHierarchy(token, std::move(store), clock, lifecycle));
  RETURN_IF_ERROR(hierarchy->Load());
  return hierarchy;
}

Status KeyHierarchy::Load() {
  ASSIGN_OR_RETURN(std::vector<pkcs11::TokenObject> objects, token_.ListTokenSecretKeys());
  LabelMap by_label;
  for (auto& object : objects) by_label.emplace(object.label, object.handle);
  RETURN_IF_ERROR(EnsureGlobalKey(by_label, kPlatformMasterKeyLabel, /*hmac=*/false));
  RETURN_IF_ERROR(EnsureGlobalKey(by_label, kAuditLogKeyLabel, /*hmac=*/true));
  RETURN_IF_ERROR(EnsureGlobalKey(by_label, kApiKeyHmacKeyLabel, /*hmac=*/true));

  ASSIGN_OR_RETURN(KeyStoreSnapshot snapshot, store_->LoadAll());
  access_ = std::make_unique<AccessDirectory>(
      *store_, token_, by_label.at(std::string(kApiKeyHmacKeyLabel)), clock_);
  access_->Load(snapshot);
  // A shredding a crash interrupted is finished before anything is served.
  if (!snapshot.token_objects_to_destroy.empty()) {
    destroy_queue_->Add(snapshot.token_objects_to_destroy);
    destroy_queue_->DestroyQueued();
    for (const std::string& label : snapshot.token_objects_to_destroy) by_label.erase(label);
  }
  {
    auto lock = catalog_->WriteLock();
    RETURN_IF_ERROR(catalog_->Load(std::move(snapshot), by_label));
  }
  return HardenKeks(by_label);
}

Status KeyHierarchy::CheckWindow(int64_t window_seconds) const {
  return CheckSeconds("the pending window", window_seconds, lifecycle_.min_pending_window_seconds,
                      kMaxPendingWindowSeconds);
}

Status KeyHierarchy::CheckRotationPeriod(std::optional<int64_t> period_seconds) const {
  if (!period_seconds) return OkStatus();  // off
  return CheckSeconds("the rotation period", *period_seconds,
                      lifecycle_.min_rotation_period_seconds, kMaxRotationPeriodSeconds);
}

size_t KeyHierarchy::TenantCount() const {
  auto lock = catalog_->ReadLock();
  return catalog_->TenantCount();
}

size_t KeyHierarchy::KeyCount() const {
  auto lock = catalog_->ReadLock();
  return catalog_->KeyCount();
}

}  // namespace kmsd
