#include "daemon/audit/recorder.h"

#include <nlohmann/json.hpp>

#include "protocol/audit_entry.h"

namespace kmsd {
namespace {

using Json = nlohmann::json;

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A message is for people and carries no secret (protocol/status.h); it is
// cut so that a hostile request cannot grow the log by much.
std::string Shortened(const std::string& message) {
  constexpr size_t kMaxMessageBytes = 256;
  return message.size() <= kMaxMessageBytes ? message : message.substr(0, kMaxMessageBytes);
}

Json DecisionOf(const Decision& decision) {
  Json out = {{"allowed", decision.allowed}};
  if (decision.permission) out["permission"] = PermissionName(*decision.permission);
  if (!decision.grants.empty()) out["grants"] = decision.grants;
  if (!decision.reason.empty()) out["reason"] = Shortened(decision.reason);
  return out;
}

enum class Kind { kRead, kData, kChange, kUnknown };

Kind KindOf(const RequestContext& context) {
  if (context.op == nullptr) return Kind::kUnknown;  // unknown or refused unread: every detail
  switch (KindOfPermission(context.op->permission)) {
    case PermissionKind::kData:
      return Kind::kData;
    case PermissionKind::kRead:
      return Kind::kRead;
    case PermissionKind::kChange:
      return Kind::kChange;
  }
  return Kind::kUnknown;
}

// What `details` leave out of a request's entry of this kind.
void Trim(Json& fields, Kind kind, const AuditDetails& details) {
  if (kind == Kind::kRead && !details.all_operations) {
    for (const char* name :
         {"decision", "keys", "items", "message", "request_bytes", "reply_bytes", "duration_us"}) {
      fields.erase(name);
    }
  }
  if (kind == Kind::kData && !details.data_access) {
    for (const char* name : {"keys", "items", "request_bytes", "reply_bytes"}) fields.erase(name);
  }
  if (kind == Kind::kChange && !details.admin_actions) {
    if (fields.contains("decision"))
      fields["decision"] = {{"allowed", fields["decision"]["allowed"]}};
    fields.erase("message");
  }
}

}  // namespace

std::string RequestEntryFields(const RequestContext& context, int64_t now_nanos,
                               const AuditDetails& details) {
  Json fields = {
      {"type", "request"},
      {"time", audit::Rfc3339Micros(now_nanos)},
      {"op", context.op_name},
      {"caller",
       {{"uid", context.caller.uid}, {"gid", context.caller.gid}, {"pid", context.caller.pid}}},
      {"outcome", CodeName(context.outcome.code())},
      {"request_bytes", context.request_bytes},
      {"reply_bytes", context.reply_bytes}};
  fields["request_id"] = context.request_id ? Json(*context.request_id) : Json(nullptr);
  if (!context.tenant.empty()) fields["tenant"] = context.tenant;
  if (context.principal) {
    const PrincipalIdentity& principal = *context.principal;
    Json who = {{"tenant", principal.tenant},
                {"name", principal.name},
                {"api_key_id", principal.api_key_id}};
    if (!principal.session_id.empty()) {
      who["session_id"] = principal.session_id;
      who["mfa"] = principal.mfa;
    }
    fields["principal"] = std::move(who);
  }
  if (context.decision.decided) fields["decision"] = DecisionOf(context.decision);
  if (!context.keys.empty()) {
    Json keys = Json::array();
    for (const KeyTouched& key : context.keys) {
      Json one = {{"id", key.key_id}, {"name", key.key_name}, {"version", key.version}};
      if (!key.role.empty()) one["role"] = key.role;
      if (key.item) one["item"] = *key.item;
      keys.push_back(std::move(one));
    }
    fields["keys"] = std::move(keys);
  }
  if (!context.item_outcomes.empty()) {
    Json items = Json::array();
    for (Code code : context.item_outcomes) items.push_back(CodeName(code));
    fields["items"] = std::move(items);
  }
  if (!context.outcome.ok()) fields["message"] = Shortened(context.outcome.message());
  if (context.received != RequestContext::Clock::time_point{}) {
    fields["duration_us"] =
        std::chrono::duration_cast<std::chrono::microseconds>(context.finished - context.received)
            .count();
  }
  Trim(fields, KindOf(context), details);
  return fields.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Status AuditRecorder::Record(const RequestContext& context) {
  // While the log is failing, a request refused for it spends none of the
  // reserve, which is kept for the entries of requests already executing.
  if (context.outcome.code() == Code::kAuditUnavailable) {
    if (Status ready = log_.Ready(); !ready.ok()) return ready;
  }
  AuditDetails details;
  if (details_of_) {
    const std::string_view tenant =
        !context.tenant.empty()
            ? std::string_view(context.tenant)
            : (context.principal ? std::string_view(context.principal->tenant) : "");
    if (!tenant.empty()) details = details_of_(tenant);
  }
  RETURN_IF_ERROR(log_.Append(RequestEntryFields(context, WallNanos(), details)));
  return line_.Record(context);
}

}  // namespace kmsd
