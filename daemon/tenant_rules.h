// TenantRules: each tenant's policy document (policy/tenant_policy.h) applied
// to requests. The decisions are the policy module's pure functions; this
// class holds their state (rate counters, requests in flight, data keys made
// today) and the parsed documents, and is where the pipeline and the
// handlers ask:
//  - Admit(): the admit stage, at intake (cheap: memory only). For every
//    request of a tenant principal (never an admin's), with or without a
//    tenant in its envelope (status, generate-random): the policy's allowed
//    peers and time windows, and mfa_required for the operations that
//    change things (policy/tenant_policy.h's NeedsMfa: a session opened with
//    a TOTP code is needed) (ACCESS_DENIED, recorded as the decision), then
//    its request rates and max_concurrent_requests (THROTTLED with a
//    retry-after). The Admission it returns holds the request's place among
//    the tenant's requests in flight until it is destroyed, once executed.
//  - MaxKeys(), TakeDataKeys(), GiveDataKeys(): quotas, for whoever asks
//    (key.create, generate-data-key): QUOTA_EXCEEDED.
//  - Put()/Get(): tenant.put-policy and tenant.get-policy. A document is
//    read in full before it is stored; a bad one changes nothing. A caller
//    that may only tighten (a manager) is refused a document that allows
//    more than the one in force (ACCESS_DENIED naming the field). A stored
//    policy's key_rotation_days becomes the hierarchy's rotation ceiling.
// The access directory is the documents' home (a put is durable first);
// this class re-reads a tenant's document when the directory's record for it
// changes, so a shredded tenant's policy goes with it. A stored document
// that no longer reads (a downgrade) fails closed: the tenant's principals,
// its quotas and its storage quotas answer INTERNAL until a good one is put.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "daemon/admission.h"
#include "daemon/request_context.h"
#include "keystore/access_directory.h"
#include "keystore/hierarchy.h"
#include "policy/tenant_policy.h"

namespace kmsd {

// A tenant's document as stored, and what kmsd made of it.
struct TenantPolicyView {
  std::shared_ptr<const TenantPolicyRecord> record;  // nullptr: none
  std::vector<PolicyNote> notes;
};

class TenantRules {
 public:
  // `now_nanos`: unix time in nanoseconds (the rate limits' and time
  // windows' clock).
  TenantRules(AccessDirectory& directory, KeyHierarchy& hierarchy,
              std::function<int64_t()> now_nanos);
  ~TenantRules();

  // Start-up: reads every stored document and sets the rotation ceilings.
  // A document that does not read is logged and fails closed (see above).
  void Load();

  // `may_loosen`: an admin's put; else only as strict or stricter.
  Result<TenantPolicyView> Put(std::string_view tenant, std::string_view document, bool may_loosen);
  Result<TenantPolicyView> Get(std::string_view tenant) const;

  Result<Admission> Admit(RequestContext& context);

  Result<std::optional<uint64_t>> MaxKeys(std::string_view tenant) const;
  // Counts `count` data keys against max_data_keys_per_day.
  Status TakeDataKeys(std::string_view tenant, uint64_t count);
  // Gives back data keys taken and not made after all.
  void GiveDataKeys(std::string_view tenant, uint64_t count);
  // The policy; nullptr when the tenant has none, INTERNAL when its
  // document does not read.
  Result<std::shared_ptr<const TenantPolicy>> PolicyOf(std::string_view tenant) const;

 private:
  struct State;
  // The tenant's state for its current document; nullptr when it has none.
  // A document that does not read gives a state whose policy is null.
  std::shared_ptr<State> StateOf(std::string_view tenant) const;
  // Makes `policy` (read from `record`) the tenant's, unless the state
  // already has `record`.
  void Install(State& state, std::shared_ptr<const TenantPolicyRecord> record,
               std::shared_ptr<const TenantPolicy> policy) const;
  std::shared_ptr<State> SlotOf(std::string_view tenant) const;
  Status ApplyRotationCeiling(std::string_view tenant, const TenantPolicy* policy);

  AccessDirectory& directory_;
  KeyHierarchy& hierarchy_;
  const std::function<int64_t()> now_nanos_;
  std::mutex put_mu_;  // one put at a time: store, then ceiling
  mutable std::shared_mutex mu_;
  mutable std::map<std::string, std::shared_ptr<State>, std::less<>> states_;  // guarded by mu_
};

}  // namespace kmsd
