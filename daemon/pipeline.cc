#include "daemon/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "daemon/alerts.h"
#include "daemon/metrics.h"
#include "keystore/access_directory.h"
#include "protocol/frame_scan.h"
#include "protocol/names.h"

namespace kmsd {

Status PeerIdentifier::Identify(RequestContext& context, const Peer& transport_peer,
                                std::optional<std::string_view> api_key) const {
  context.caller = transport_peer;
  if (api_key) return Status(Code::kAccessDenied, "API keys are not accepted here");
  return OkStatus();
}

Status ApiKeyIdentifier::Identify(RequestContext& context, const Peer& transport_peer,
                                  std::optional<std::string_view> api_key) const {
  context.caller = transport_peer;
  if (!api_key) return OkStatus();
  RETURN_IF_ERROR(lockout_.CheckPeer(transport_peer));
  std::optional<SessionInfo> session;
  bool guessed = false;
  Result<AuthenticatedKey> authenticated = Authenticate(*api_key, &session, &guessed);
  if (!authenticated) {
    // A credential nobody holds is a guess; a revoked, expired, idle or
    // ended one is not (its holder is told why, and is not locked out).
    if (guessed) {
      lockout_.Failed(transport_peer, directory_.OwnerOfKey(*api_key),
                      IsSessionToken(*api_key) ? "a session token" : "an API key");
    }
    return authenticated.error();
  }
  AuthenticatedKey key = std::move(*authenticated);
  const PrincipalRecord& principal = *key.principal;
  if (!principal.uids.empty() || !principal.gids.empty()) {
    const PeerSet bound{{principal.uids.begin(), principal.uids.end()},
                        {principal.gids.begin(), principal.gids.end()}};
    if (!bound.Contains(transport_peer)) {
      return Status(Code::kAccessDenied, "API key " + key.key_id + " of principal '" +
                                             principal.name + "' may not be used by uid " +
                                             std::to_string(transport_peer.uid) +
                                             ": the principal is bound to other peers");
    }
  }
  Derived derived;
  {
    std::lock_guard lock(cache_mu_);
    if (auto tenant = cache_.find(principal.tenant); tenant != cache_.end()) {
      auto it = tenant->second.find(principal.name);
      if (it != tenant->second.end() && it->second.generation == key.generation) {
        derived = it->second;
      }
    }
  }
  if (derived.generation != key.generation) {
    derived = DeriveAccess(principal, key.generation);
    std::lock_guard lock(cache_mu_);
    Derived& slot = cache_[principal.tenant][principal.name];
    if (slot.generation < derived.generation) slot = derived;
  }
  context.principal = PrincipalIdentity{.tenant = principal.tenant,
                                        .name = principal.name,
                                        .api_key_id = key.key_id,
                                        .session_id = session ? session->id : std::string(),
                                        .mfa = session && session->mfa,
                                        .permissions = derived.access->roles.everywhere,
                                        .access = std::move(derived.access)};
  return OkStatus();
}

Result<AuthenticatedKey> ApiKeyIdentifier::Authenticate(std::string_view credential,
                                                        std::optional<SessionInfo>* session,
                                                        bool* guessed) const {
  if (IsSessionToken(credential)) {
    Result<SessionInfo> found = sessions_.Authenticate(credential, guessed);
    if (!found) return Error(std::move(found).error());
    *session = std::move(*found);
    return directory_.AuthenticateProven((*session)->api_key_id);
  }
  return directory_.Authenticate(credential, guessed);
}

// The roles of `principal` with the tenant's custom roles, and its grants, as
// the directory holds them at `generation` or later (a later one is only
// newer: the cache keeps the generation it was asked for, so it is redone).
ApiKeyIdentifier::Derived ApiKeyIdentifier::DeriveAccess(const PrincipalRecord& principal,
                                                         uint64_t generation) const {
  PrincipalAccessRecords records = directory_.AccessRecordsOf(principal.tenant, principal.name);
  return {generation, AccessOf(principal.roles, *records.roles, std::move(records.grants))};
}

Status PolicyAuthorizer::Authorize(RequestContext& context, const AccessQuestion& question) const {
  const PrincipalIdentity* principal = context.principal ? &*context.principal : nullptr;
  Status allowed;
  if (question.resource == nullptr) {
    bool pending = false;
    allowed = policy_.Authorize(context.caller, principal, question.operation, question.permission,
                                question.tenant, question.acts_on, &pending);
    if (allowed.ok() && pending) context.decision.resource_pending = true;
  } else if (principal == nullptr || !question.permission) {
    allowed = policy_.Authorize(context.caller, principal, question.operation, question.permission,
                                question.tenant);
  } else {
    std::string grant;
    allowed = policy_.AuthorizeResource(*principal, question.operation, *question.permission,
                                        *question.resource, now_(), &grant);
    if (!grant.empty() && std::find(context.decision.grants.begin(), context.decision.grants.end(),
                                    grant) == context.decision.grants.end()) {
      context.decision.grants.push_back(std::move(grant));
    }
  }
  // The first denial is the one the request is refused for.
  if (!context.decision.decided || context.decision.allowed) {
    context.decision.decided = true;
    context.decision.allowed = allowed.ok();
    context.decision.permission = question.permission;
    context.decision.reason = allowed.ok() ? std::string() : allowed.message();
  }
  return allowed;
}

Status LogRecorder::Record(const RequestContext& context) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(context.finished - context.received)
          .count();
  const std::string_view tenant = context.tenant.empty() ? "-" : std::string_view(context.tenant);
  // Identifiers only: never arguments, results or the frame.
  const std::string_view principal =
      context.principal ? std::string_view(context.principal->name) : "-";
  const std::string_view key_id =
      context.principal ? std::string_view(context.principal->api_key_id) : "-";
  // Served requests at debug level: the audit log records each of them; the
  // daemon's log keeps the failures in sight.
  if (context.outcome.ok()) {
    spdlog::debug(
        "request id={} op={} tenant={} uid={} pid={} principal={} api_key={} code=OK us={}",
        context.request_id.value_or(0), context.op_name, tenant, context.caller.uid,
        context.caller.pid, principal, key_id, micros);
    return OkStatus();
  }
  spdlog::warn("request id={} op={} tenant={} uid={} pid={} principal={} api_key={} code={} us={}",
               context.request_id.value_or(0), context.op_name, tenant, context.caller.uid,
               context.caller.pid, principal, key_id, CodeName(context.outcome.code()), micros);
  return OkStatus();
}

Pipeline::Pipeline(size_t max_frame_bytes, PipelineStages stages, ServiceDeps& deps)
    : max_frame_bytes_(max_frame_bytes),
      stages_(std::move(stages)),
      deps_(deps),
      item_authorizer_(
          [this](RequestContext& context, Permission permission, const ResourceFacts& resource) {
            // Asked, whatever the answer: a batch whose every item is refused did check.
            context.decision.resource_checked = true;
            return stages_.authorize.Authorize(context, {.operation = context.op_name,
                                                         .permission = permission,
                                                         .acts_on = resource.kind,
                                                         .tenant = context.tenant,
                                                         .resource = &resource});
          }) {}

// The envelope stage, with identify and authorize where they belong: after the
// scan (nothing is built from a frame before its shape and size are known)
// and before the full decode (a caller that may not call anything is told so
// before anything else about its request).
Status Pipeline::ReadEnvelope(RequestContext& context, const Peer& transport_peer,
                              std::span<const uint8_t> frame, ParsedRequest* parsed) const {
  if (frame.size() > max_frame_bytes_) {
    return Status(Code::kFrameTooLarge, "request frame of " + std::to_string(frame.size()) +
                                            " bytes is over the limit of " +
                                            std::to_string(max_frame_bytes_));
  }
  ASSIGN_OR_RETURN(ScannedRequest scanned, ScanRequestFrame(frame));
  // Echoed from here on, also when the envelope is refused later (a key that
  // is not a string, say): the reply's id is nil only when it cannot be read.
  context.request_id = scanned.id;
  const std::string_view scanned_op = scanned.op.value_or("");
  const std::string_view scanned_tenant = scanned.tenant.value_or("");
  const OperationInfo* op = FindOperation(scanned_op);
  // A request refused here is recorded with what it claimed: an attempt on a
  // tenant belongs in that tenant's audit trail.
  auto claimed = [&] {
    context.request_id = scanned.id;
    if (op != nullptr) context.op_name = op->name;
    if (!scanned_tenant.empty() && ValidateTenantName(scanned_tenant).ok()) {
      context.tenant = std::string(scanned_tenant);
    }
  };
  if (Status identified = stages_.identify.Identify(context, transport_peer, scanned.api_key);
      !identified.ok()) {
    claimed();
    return identified;
  }
  AccessQuestion question;
  question.operation = scanned_op;
  question.tenant = scanned_tenant;
  if (op != nullptr) {
    question.permission = op->permission;
    question.acts_on = op->resource;
  }
  if (Status allowed = stages_.authorize.Authorize(context, question); !allowed.ok()) {
    claimed();
    return allowed;
  }
  ASSIGN_OR_RETURN(parsed->frame, Frame::Decode(frame));
  ASSIGN_OR_RETURN(parsed->envelope, ParseRequest(parsed->frame->root(), &context.request_id));
  const RequestEnvelope& request = parsed->envelope;
  if (request.op != scanned_op || request.tenant != scanned_tenant) {
    // The scan refuses repeated envelope keys, so both passes read the same.
    return Status(Code::kInternal, "request envelope read differently by scan and decode");
  }
  if (op == nullptr) {
    return Status(Code::kUnknownOperation,
                  "unknown operation '" + std::string(request.op.substr(0, 64)) + "'");
  }
  context.op = op;
  context.op_name = op->name;
  return OkStatus();
}

Status Pipeline::Intake(RequestContext& context, const Peer& transport_peer,
                        std::span<const uint8_t> frame, ParsedRequest* parsed) const {
  context.request_bytes = frame.size();
  // Known before anything else: a request refused unread is recorded with it.
  context.caller = transport_peer;
  RETURN_IF_ERROR(stages_.record.Ready());
  RETURN_IF_ERROR(ReadEnvelope(context, transport_peer, frame, parsed));
  const OperationInfo& op = *context.op;
  const std::string_view tenant = parsed->envelope.tenant;
  if (!op.needs_tenant && !tenant.empty()) {
    return Status(Code::kInvalidArgument,
                  "operation '" + std::string(op.name) + "' takes no tenant");
  }
  if (op.needs_tenant) {
    if (tenant.empty()) {
      return Status(Code::kInvalidArgument,
                    "operation '" + std::string(op.name) + "' needs the request's 'tenant' field");
    }
    RETURN_IF_ERROR(ValidateTenantName(tenant));
    context.tenant = std::string(tenant);
  }
  // A principal's request is its tenant's, with or without a tenant.
  if (stages_.admit) {
    ASSIGN_OR_RETURN(parsed->admission, stages_.admit(context));
  }
  return OkStatus();
}

Result<Value::Map> Pipeline::Run(RequestContext& context, ParsedRequest& parsed) const {
  const OperationInfo& op = *context.op;
  if (op.needs_tenant && !op.serves_pending_tenant) {
    RETURN_IF_ERROR(stages_.check_tenant_serving(context.tenant));
  }
  const Handler handler = stages_.handlers.Find(op.id);
  if (handler == nullptr) {
    return Error(Code::kInternal, "no handler for '" + std::string(op.name) + "'");
  }
  Call call(deps_, context, item_authorizer_);
  Result<Value::Map> result = handler(call, parsed.envelope.args);
  if (result && context.decision.resource_pending && !context.decision.resource_checked) {
    // A handler that forgot its resource check: nothing leaves (a bug).
    return Error(Code::kInternal,
                 "operation '" + std::string(op.name) + "' did not check the key it acted on");
  }
  return result;
}

WipingBuffer Pipeline::Execute(RequestContext& context, ParsedRequest& parsed) const {
  context.started = RequestContext::Clock::now();
  // Asked again: the log may have begun failing while the request queued.
  if (Status ready = stages_.record.Ready(); !ready.ok()) {
    return Finish(context, Error(std::move(ready)));
  }
  return Finish(context, Run(context, parsed));
}

WipingBuffer Pipeline::Refuse(RequestContext& context, Status status) const {
  return Finish(context, Error(std::move(status)));
}

WipingBuffer Pipeline::Finish(RequestContext& context, Result<Value::Map> result) const {
  context.outcome = result ? OkStatus() : result.error();
  WipingBuffer reply = result ? EncodeOkReply(*context.request_id, std::move(*result))
                              : EncodeErrorReply(context.request_id, context.outcome);
  context.reply_bytes = reply.size();
  context.finished = RequestContext::Clock::now();
  // Nothing is served unrecorded: the reply is dropped (and wiped) when its
  // record cannot be written.
  if (Status recorded = stages_.record.Record(context); !recorded.ok() && context.outcome.ok()) {
    context.outcome = recorded;
    reply = EncodeErrorReply(context.request_id, recorded);
  }
  if (deps_.metrics != nullptr) deps_.metrics->Record(context);
  if (deps_.alerts != nullptr) deps_.alerts->Observe(context);
  return reply;
}

}  // namespace kmsd
