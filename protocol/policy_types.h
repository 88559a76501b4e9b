// Requests and replies of a tenant's policy operations (docs/PROTOCOL.md,
// "Tenant policies"): tenant.put-policy stores a YAML document of the seeds'
// shapes (policy/tenant_policy.h reads it), tenant.get-policy gives it back
// with what kmsd made of the fields it does not simply enforce. Same rules as
// protocol/operation_types.h. Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/operation_types.h"

namespace kmsd {

namespace wire {
inline constexpr std::string_view kDocument = "document";
inline constexpr std::string_view kField = "field";
inline constexpr std::string_view kNote = "note";
inline constexpr std::string_view kNotes = "notes";
}  // namespace wire

namespace ops {

struct PolicyPutRequest {
  std::string_view document;  // YAML, at most kMaxPolicyDocumentBytes
  static constexpr auto kFields = std::tuple{Field{wire::kDocument, &PolicyPutRequest::document}};
};

// A field kmsd does not simply enforce: unknown, not_applicable or
// served_elsewhere, and why.
struct PolicyNoteDescription {
  std::string field;
  std::string kind;
  std::string note;
  static constexpr auto kFields = std::tuple{Field{wire::kField, &PolicyNoteDescription::field},
                                             Field{wire::kKind, &PolicyNoteDescription::kind},
                                             Field{wire::kNote, &PolicyNoteDescription::note}};
};

struct PolicyDescription {
  std::string tenant;
  // The document as put, byte for byte; absent when the tenant has none.
  std::optional<std::string> document;
  std::optional<int64_t> updated_at;
  std::vector<PolicyNoteDescription> notes;
  static constexpr auto kFields =
      std::tuple{Field{wire::kTenant, &PolicyDescription::tenant},
                 Field{wire::kDocument, &PolicyDescription::document},
                 Field{wire::kUpdatedAt, &PolicyDescription::updated_at},
                 Field{wire::kNotes, &PolicyDescription::notes}};
};

using TenantPutPolicy = Op<OpId::kTenantPutPolicy, PolicyPutRequest, PolicyDescription>;
using TenantGetPolicy = Op<OpId::kTenantGetPolicy, NoFields, PolicyDescription>;

}  // namespace ops
}  // namespace kmsd
