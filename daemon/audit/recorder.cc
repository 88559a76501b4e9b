#include "daemon/audit/recorder.h"

#include "protocol/audit_entry.h"
#include "protocol/json_writer.h"

namespace kmsd {
namespace {

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A message is for people and carries no secret (protocol/status.h); it is
// cut so that a hostile request cannot grow the log by much.
std::string_view Shortened(std::string_view message) {
  constexpr size_t kMaxMessageBytes = 256;
  return message.substr(0, kMaxMessageBytes);
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

// Which of an entry's optional fields `details` keep for a request of `kind`.
struct Kept {
  bool decision = true;
  bool decision_details = true;  // permission, grants, reason
  bool keys_and_items = true;
  bool message = true;
  bool sizes = true;
  bool duration = true;
};

Kept KeptFor(Kind kind, const AuditDetails& details) {
  Kept kept;
  if (kind == Kind::kRead && !details.all_operations) {
    kept.decision = kept.keys_and_items = kept.message = kept.sizes = kept.duration = false;
  }
  if (kind == Kind::kData && !details.data_access) {
    kept.keys_and_items = false;
    kept.sizes = false;
  }
  if (kind == Kind::kChange && !details.admin_actions) {
    kept.decision_details = false;
    kept.message = false;
  }
  return kept;
}

void WriteDecision(JsonWriter& json, const Decision& decision, bool with_details) {
  json.BeginObject().Key("allowed").Bool(decision.allowed);
  if (with_details) {
    if (!decision.grants.empty()) {
      json.Key("grants").BeginArray();
      for (const std::string& grant : decision.grants) json.String(grant);
      json.EndArray();
    }
    if (decision.permission) json.Key("permission").String(PermissionName(*decision.permission));
    if (!decision.reason.empty()) json.Key("reason").String(Shortened(decision.reason));
  }
  json.EndObject();
}

void WriteKeys(JsonWriter& json, const std::vector<KeyTouched>& keys) {
  json.BeginArray();
  for (const KeyTouched& key : keys) {
    json.BeginObject().Key("id").String(key.key_id);
    if (key.item) json.Key("item").Uint(*key.item);
    json.Key("name").String(key.key_name);
    if (!key.role.empty()) json.Key("role").String(key.role);
    json.Key("version").Uint(key.version).EndObject();
  }
  json.EndArray();
}

void WritePrincipal(JsonWriter& json, const PrincipalIdentity& principal) {
  json.BeginObject().Key("api_key_id").String(principal.api_key_id);
  const bool in_session = !principal.session_id.empty();
  if (in_session) json.Key("mfa").Bool(principal.mfa);
  json.Key("name").String(principal.name);
  if (in_session) json.Key("session_id").String(principal.session_id);
  json.Key("tenant").String(principal.tenant).EndObject();
}

}  // namespace

// Written by hand rather than through a JSON document (a map per object):
// this runs once per request. Members are in name order, as docs/AUDIT.md shows.
std::string RequestEntryFields(const RequestContext& context, int64_t now_nanos,
                               const AuditDetails& details) {
  const Kept kept = KeptFor(KindOf(context), details);
  std::string out;
  out.reserve(512);
  JsonWriter json(out);
  json.BeginObject();
  json.Key("caller").BeginObject();
  json.Key("gid").Int(context.caller.gid).Key("pid").Int(context.caller.pid);
  json.Key("uid").Int(context.caller.uid).EndObject();
  if (context.decision.decided && kept.decision) {
    json.Key("decision");
    WriteDecision(json, context.decision, kept.decision_details);
  }
  const bool timed = context.received != RequestContext::Clock::time_point{};
  if (timed && kept.duration) {
    json.Key("duration_us")
        .Int(std::chrono::duration_cast<std::chrono::microseconds>(context.finished -
                                                                   context.received)
                 .count());
  }
  if (!context.item_outcomes.empty() && kept.keys_and_items) {
    json.Key("items").BeginArray();
    for (Code code : context.item_outcomes) json.String(CodeName(code));
    json.EndArray();
  }
  if (!context.keys.empty() && kept.keys_and_items) {
    json.Key("keys");
    WriteKeys(json, context.keys);
  }
  if (!context.outcome.ok() && kept.message) {
    json.Key("message").String(Shortened(context.outcome.message()));
  }
  json.Key("op").String(context.op_name).Key("outcome").String(CodeName(context.outcome.code()));
  if (context.principal) {
    json.Key("principal");
    WritePrincipal(json, *context.principal);
  }
  if (kept.sizes) {
    json.Key("reply_bytes").Uint(context.reply_bytes);
    json.Key("request_bytes").Uint(context.request_bytes);
  }
  json.Key("request_id");
  if (context.request_id) {
    json.Uint(*context.request_id);
  } else {
    json.Null();
  }
  if (!context.tenant.empty()) json.Key("tenant").String(context.tenant);
  json.Key("time").String(audit::Rfc3339MicrosText(now_nanos).view()).Key("type").String("request");
  json.EndObject();
  return out;
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
