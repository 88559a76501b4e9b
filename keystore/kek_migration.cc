// KeyHierarchy's start-up migration to hardened token objects (DESIGN.md
// invariant 1; docs/FORMATS.md "Hardened token objects").
//
// PKCS#11 fixes CKA_MODIFIABLE, CKA_COPYABLE and the unwrap template when an
// object is created, so a KEK (or per-tenant root) made before hardening
// cannot be fixed in place. For each tenant with such objects:
//   1. a hardened KEK is created per key under the next label
//      (tenants/<t>/keys/<id>/2, /3, ...), destroying first any object a
//      crashed earlier attempt left under that label (the keystore never
//      names a label before step 2 commits);
//   2. every version is moved under it (Token::RewrapAesKey: same key
//      material, so every ciphertext still decrypts), and one keystore
//      transaction records the new labels and wrapped bytes, forgets the
//      tenant's root and queues the old objects for destruction;
//   3. the queue is worked off as for shredding.
// A crash before 2 leaves the old state (step 1 is redone); after 2, the next
// start destroys what is still queued. Nothing is lost at any point.
#include <spdlog/spdlog.h>

#include <charconv>

#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "keystore/internal/destroy_queue.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

// The label after `current` for a key's KEK: the first KEK is KekLabel(),
// its replacements KekLabel() + "/2", "/3", ...
std::string NextKekLabel(const KeyRecord& key) {
  const std::string base = KekLabel(key.tenant, key.id);
  unsigned generation = 1;
  if (key.kek_label.starts_with(base + "/")) {
    const std::string_view suffix = std::string_view(key.kek_label).substr(base.size() + 1);
    std::from_chars(suffix.data(), suffix.data() + suffix.size(), generation);
  }
  return base + "/" + std::to_string(generation + 1);
}

}  // namespace

Status KeyHierarchy::EnsureGlobalKey(LabelMap& by_label, std::string_view label, bool hmac) {
  if (auto it = by_label.find(label); it != by_label.end()) {
    ASSIGN_OR_RETURN(bool hardened, token_.IsHardened(it->second));
    if (hardened) return OkStatus();
    spdlog::warn("{} was made before hardening (it can be modified or copied); replacing it",
                 label);
    RETURN_IF_ERROR(token_.DestroyObject(it->second));
    by_label.erase(it);
  }
  ASSIGN_OR_RETURN(pkcs11::ObjectHandle handle,
                   hmac ? token_.CreateTokenHmacKey(label) : token_.CreateTokenWrappingKey(label));
  by_label.emplace(std::string(label), handle);
  spdlog::info("created {} in the token", label);
  return OkStatus();
}

Status KeyHierarchy::HardenKeks(const LabelMap& by_label) {
  std::lock_guard write(write_mu_);
  size_t moved = 0;
  for (const auto& [name, tenant] : catalog_->tenants()) {
    ASSIGN_OR_RETURN(size_t keys, HardenTenantKeks(*tenant, by_label));
    moved += keys;
  }
  if (moved > 0) spdlog::info("{} keys moved to hardened KEKs", moved);
  destroy_queue_->DestroyQueued();
  return OkStatus();
}

Result<std::optional<pkcs11::ObjectHandle>> KeyHierarchy::KekToReplace(const Tenant& tenant,
                                                                       const Key& key) {
  if (key.record.kek_label.empty()) return tenant.root;  // under the root: always moved
  if (!key.kek) return std::nullopt;                     // shredded: nothing to move
  ASSIGN_OR_RETURN(bool hardened, token_.IsHardened(*key.kek));
  if (hardened) return std::nullopt;
  return key.kek;
}

Status KeyHierarchy::DestroyLeftovers(const LabelMap& by_label, const std::string& label) {
  if (!by_label.contains(label)) return OkStatus();
  ASSIGN_OR_RETURN(std::vector<pkcs11::ObjectHandle> leftovers,
                   token_.FindTokenSecretKeysByLabel(label));
  for (pkcs11::ObjectHandle leftover : leftovers) {
    RETURN_IF_ERROR(token_.DestroyObject(leftover));
    spdlog::warn("destroyed {}, left by an interrupted migration", label);
  }
  return OkStatus();
}

Result<size_t> KeyHierarchy::HardenTenantKeks(Tenant& tenant, const LabelMap& by_label) {
  std::vector<std::pair<Key*, pkcs11::ObjectHandle>> to_move;  // (key, its old wrapping key)
  for (auto& [name, key] : tenant.keys) {
    ASSIGN_OR_RETURN(std::optional<pkcs11::ObjectHandle> old, KekToReplace(tenant, *key));
    if (old) to_move.emplace_back(key.get(), *old);
  }
  // With a root in the token, every key under it is moved now.
  const bool clear_root = tenant.root.has_value();
  if (to_move.empty() && !clear_root) return 0;

  KekReplacement change{tenant.record.name, {}, clear_root, {}};
  std::vector<pkcs11::ObjectHandle> new_keks;
  auto replace = [&]() -> Status {
    for (const auto& [key, old] : to_move) {
      const std::string label = NextKekLabel(key->record);
      RETURN_IF_ERROR(DestroyLeftovers(by_label, label));
      ASSIGN_OR_RETURN(pkcs11::ObjectHandle kek, token_.CreateTokenWrappingKey(label));
      new_keks.push_back(kek);
      KekReplacement::Key moved{key->record.id, label, {}};
      for (const auto& version : key->versions) {
        ASSIGN_OR_RETURN(Bytes wrapped, token_.RewrapAesKey(old, version->wrapped, kek));
        moved.versions.emplace_back(version->number, std::move(wrapped));
      }
      if (!key->record.kek_label.empty()) {
        change.token_labels_to_destroy.push_back(key->record.kek_label);
      }
      change.keys.push_back(std::move(moved));
    }
    if (clear_root) change.token_labels_to_destroy.push_back(tenant.record.root_label);
    return store_->ReplaceKeks(change, clock_.NowSeconds());
  };
  if (Status status = replace(); !status.ok()) {
    DestroyNewKeks(new_keks, tenant.record.name);
    return Error(
        Status(status.code(), "tenant " + tenant.record.name +
                                  ": cannot move keys to hardened KEKs: " + status.message()));
  }
  auto lock = catalog_->WriteLock();
  for (size_t i = 0; i < to_move.size(); ++i) {
    Key& key = *to_move[i].first;
    key.record.kek_label = change.keys[i].kek_label;
    key.kek = new_keks[i];
    for (size_t v = 0; v < key.versions.size(); ++v) {
      key.versions[v]->wrapped = std::move(change.keys[i].versions[v].second);
    }
  }
  if (clear_root) {
    tenant.record.root_label.clear();
    tenant.root.reset();
  }
  lock.unlock();
  destroy_queue_->Add(change.token_labels_to_destroy);
  spdlog::info("tenant {}: {} keys moved to hardened KEKs{}", tenant.record.name, to_move.size(),
               clear_root ? ", root retired" : "");
  return to_move.size();
}

}  // namespace kmsd
