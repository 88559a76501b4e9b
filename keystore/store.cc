// The defaults of KeyStore (store.h): one change at a time, for decorators
// and stores that one process uses alone.
#include "keystore/store.h"

#include <type_traits>
#include <variant>

namespace kmsd {
namespace {

// Makes each kind of change through its single KeyStore call.
struct SingleCall {
  KeyStore& store;

  Status operator()(const store_change::CreateTenant& c) {
    return store.CreateTenant(c.tenant, {}, {}, {});
  }
  Status operator()(const store_change::CreateKey& c) {
    return store.CreateKey(c.key, c.first_version);
  }
  Status operator()(const store_change::AddKeyVersion& c) { return store.AddKeyVersion(c.version); }
  Status operator()(const store_change::CreateAlias& c) { return store.CreateAlias(c.alias); }
  Status operator()(const store_change::UpdateAlias& c) {
    return store.UpdateAlias(c.tenant, c.name, c.key_id, c.updated_at);
  }
  Status operator()(const store_change::DeleteAlias& c) {
    return store.DeleteAlias(c.tenant, c.name);
  }
  Status operator()(const store_change::SetKeyEnabled& c) {
    return store.SetKeyEnabled(c.key_id, c.enabled);
  }
  Status operator()(const store_change::ScheduleKeyDeletion& c) {
    return store.ScheduleKeyDeletion(c.key_id, c.due_at);
  }
  Status operator()(const store_change::CancelKeyDeletion& c) {
    return store.CancelKeyDeletion(c.key_id);
  }
  Status operator()(const store_change::ScheduleTenantDeletion& c) {
    return store.ScheduleTenantDeletion(c.tenant, c.due_at);
  }
  Status operator()(const store_change::CancelTenantDeletion& c) {
    return store.CancelTenantDeletion(c.tenant);
  }
  Status operator()(const store_change::SetRotationPeriod& c) {
    return store.SetRotationPeriod(c.key_id, c.period_seconds);
  }
  Status operator()(const store_change::SetMinDecryptionVersion& c) {
    return store.SetMinDecryptionVersion(c.key_id, c.version);
  }
  Status operator()(const store_change::ShredKey& c) {
    return store.ShredKey(c.key_id, c.token_labels, c.queued_at);
  }
  Status operator()(const store_change::ShredTenant& c) {
    return store.ShredTenant(c.tenant, c.token_labels, c.queued_at);
  }
  Status operator()(const store_change::TokenObjectDestroyed& c) {
    return store.TokenObjectDestroyed(c.label);
  }
  Status operator()(const store_change::ReplaceKeks& c) {
    return store.ReplaceKeks(c.change, c.queued_at);
  }
  template <typename Change>
  requires std::is_constructible_v<AccessChange, Change> Status operator()(const Change& c) {
    return store.WriteAccess(c);
  }
};

}  // namespace

Status KeyStore::Apply(const UnitOfWork& unit) {
  for (const KeyStoreChange& change : unit.changes) {
    RETURN_IF_ERROR(std::visit(SingleCall{*this}, change));
  }
  return OkStatus();
}

Result<uint64_t> KeyStore::ReserveEncryptionRange(const KeyId& key_id, uint32_t version,
                                                  uint64_t count) {
  if (count == 0) return Error(Code::kInvalidArgument, "an empty range of encryptions");
  ASSIGN_OR_RETURN(KeyStoreSnapshot snapshot, LoadAll());
  for (const KeyVersionRecord& record : snapshot.versions) {
    if (record.key_id != key_id || record.version != version) continue;
    const uint64_t end = record.reserved_encryptions + count;
    RETURN_IF_ERROR(ReserveEncryptions(key_id, version, end));
    return end;
  }
  return Error(Code::kNotFound, "key " + KeyIdToHex(key_id) + " version " +
                                    std::to_string(version) + " does not exist");
}

}  // namespace kmsd
