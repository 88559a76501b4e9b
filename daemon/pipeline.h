// Pipeline: the stages every request takes (docs/ARCHITECTURE.md):
//
//   receive → envelope → identify → authorize → admit → execute → record → reply
//
// The server (daemon/server.h) receives frames and replies; admission is the
// tenant's rules (here, at intake) then its fair queue (daemon/fair_queue.h). This file holds the
// rest, each stage a small replaceable unit passing one RequestContext:
//  - Intake() runs on the receiving thread: the envelope (frame size, a scan
//    before anything is built from the frame, then the decode), identify,
//    authorize, the operation's tenant rules and the tenant's own (its
//    policy's conditions and limits: the first half of admit). It is cheap and does no
//    keystore or token work, so receiving never waits on execution.
//  - Execute() runs on a worker: the pending-tenant check, the operation's
//    handler, then record.
//  - Refuse() answers a request stopped before a worker ran it, and records it.
// Every path ends in exactly one record and one reply. A Pipeline is shared
// by the receiver and all workers: its methods are thread-safe as long as
// its stages are (the ones here are).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>

#include "daemon/admission.h"
#include "daemon/handlers/handler.h"
#include "daemon/request_context.h"
#include "daemon/sessions.h"
#include "keystore/access_directory.h"
#include "policy/access.h"
#include "protocol/message.h"
#include "protocol/value.h"

namespace kmsd {

// Stage: who is calling. The kernel's word (the peer's uid, gid, groups),
// and the tenant principal of the request's API key when it carries one.
class Identifier {
 public:
  virtual ~Identifier() = default;
  // `api_key` is a secret: never logged, never kept past the call.
  virtual Status Identify(RequestContext& context, const Peer& transport_peer,
                          std::optional<std::string_view> api_key) const = 0;
};

// The peer alone: a request with an API key is refused (tests of stages).
class PeerIdentifier final : public Identifier {
 public:
  Status Identify(RequestContext& context, const Peer& transport_peer,
                  std::optional<std::string_view> api_key) const override;
};

// The peer, and the principal of an API key (keystore/access_directory.h)
// or of a session token (daemon/sessions.h: the API key it was opened with):
// ACCESS_DENIED for a credential that is not valid, revoked or expired (a
// session ends with its key), or one whose principal is bound to peers this
// one is not. A credential that is not valid counts as a failed attempt of
// the peer (and of the principal it names); a peer locked out for them is
// refused before its credential is looked at. Admins are neither counted
// nor held: they may do everything without a credential, so guessing one
// gains them nothing. What the principal's roles
// and grants give is derived once per change of the directory and cached.
class ApiKeyIdentifier final : public Identifier {
 public:
  ApiKeyIdentifier(AccessDirectory& directory, SessionTable& sessions, AuthLockout& lockout)
      : directory_(directory), sessions_(sessions), lockout_(lockout) {}
  Status Identify(RequestContext& context, const Peer& transport_peer,
                  std::optional<std::string_view> api_key) const override;

 private:
  // The key (and session) a credential stands for.
  // `guessed` is set for a failed attempt (daemon/sessions.h).
  Result<AuthenticatedKey> Authenticate(std::string_view credential,
                                        std::optional<SessionInfo>* session, bool* guessed) const;
  struct Derived {
    uint64_t generation = 0;
    std::shared_ptr<const PrincipalAccess> access;
  };
  Derived DeriveAccess(const PrincipalRecord& principal, uint64_t generation) const;

  AccessDirectory& directory_;
  SessionTable& sessions_;
  AuthLockout& lockout_;
  mutable std::mutex cache_mu_;
  // By tenant, then principal name. Entries of deleted principals stay
  // (stale by generation) until kmsd restarts: a few bytes each.
  mutable std::map<std::string, std::map<std::string, Derived, std::less<>>, std::less<>> cache_;
};

// What the authorize stage is asked: the whole request at intake, or one
// key or alias of it during execution.
struct AccessQuestion {
  std::string_view operation;            // the request's op name as sent
  std::optional<Permission> permission;  // nullopt: no such operation
  std::optional<Resource> acts_on;       // what kind of thing the operation acts on
  std::string_view tenant;
  const ResourceFacts* resource = nullptr;  // set when asked about one key or alias
};

// Stage: may the caller do this? Records its decision in the context (the
// first denial stands). `operation` may not exist: a caller that may not call
// anything hears ACCESS_DENIED before UNKNOWN_OPERATION. At intake, a
// principal that may act on some keys or aliases only is let in with
// context.decision.resource_pending set; the execute stage then asks about
// the resource (Call::AuthorizeKey), which sets resource_checked.
class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual Status Authorize(RequestContext& context, const AccessQuestion& question) const = 0;
};

// Admins, principals' roles and grants (policy/access.h); `now` is the clock
// grants expire by.
class PolicyAuthorizer final : public Authorizer {
 public:
  PolicyAuthorizer(const AccessPolicy& policy, std::function<int64_t()> now)
      : policy_(policy), now_(std::move(now)) {}
  Status Authorize(RequestContext& context, const AccessQuestion& question) const override;

 private:
  const AccessPolicy& policy_;
  const std::function<int64_t()> now_;
};

// Stage: what is written down about each request. Never arguments or results.
// A request is served only when its record is written (invariant 7): Ready()
// is asked before anything else is done for a request, Record() before its
// reply is sent; an error from either (AUDIT_UNAVAILABLE) is the reply.
class Recorder {
 public:
  virtual ~Recorder() = default;
  virtual Status Ready() const { return OkStatus(); }
  virtual Status Record(const RequestContext& context) = 0;
};

// One log line of identifiers per request in the daemon's log, beside the
// audit log (daemon/audit/recorder.h): a failed request's at warn level, a
// served one's at debug.
class LogRecorder final : public Recorder {
 public:
  Status Record(const RequestContext& context) override;
};

// A request past intake: its decoded frame (views into the caller's bytes,
// which must outlive it) and envelope.
struct ParsedRequest {
  std::optional<Frame> frame;
  RequestEnvelope envelope;
  Admission admission;  // the admit stage's, until executed
};

// Stage: the tenant's own rules at intake (daemon/tenant_rules.h): its
// policy's conditions and limits. OK with the request's Admission, or why
// not (ACCESS_DENIED, THROTTLED with a retry-after, ...).
using AdmitStage = std::function<Result<Admission>(RequestContext& context)>;

struct PipelineStages {
  const Identifier& identify;
  const Authorizer& authorize;
  Recorder& record;
  const HandlerTable& handlers;
  // OK, or why the tenant is not served now (pending deletion).
  std::function<Status(std::string_view tenant)> check_tenant_serving;
  // Absent: no tenant rules (tests of other stages).
  AdmitStage admit = nullptr;
};

class Pipeline {
 public:
  Pipeline(size_t max_frame_bytes, PipelineStages stages, ServiceDeps& deps);

  // Fills `context` and `parsed`; OK means admit it (its lane is
  // context.tenant), else Refuse() with the status.
  Status Intake(RequestContext& context, const Peer& transport_peer, std::span<const uint8_t> frame,
                ParsedRequest* parsed) const;
  WipingBuffer Execute(RequestContext& context, ParsedRequest& parsed) const;
  WipingBuffer Refuse(RequestContext& context, Status status) const;

 private:
  Status ReadEnvelope(RequestContext& context, const Peer& transport_peer,
                      std::span<const uint8_t> frame, ParsedRequest* parsed) const;
  Result<Value::Map> Run(RequestContext& context, ParsedRequest& parsed) const;
  WipingBuffer Finish(RequestContext& context, Result<Value::Map> result) const;

  const size_t max_frame_bytes_;
  const PipelineStages stages_;
  ServiceDeps& deps_;
  const ItemAuthorizer item_authorizer_;
};

}  // namespace kmsd
