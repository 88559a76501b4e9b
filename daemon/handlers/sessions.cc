// Session and MFA handlers: session.login, session.logout, session.list,
// session.revoke, mfa.enroll (daemon/sessions.h keeps the sessions; a TOTP
// seed is kept wrapped under the tenant's secrets-key).
#include "daemon/sessions.h"

#include <spdlog/spdlog.h>

#include "daemon/handlers/access_rules.h"
#include "daemon/handlers/handler.h"
#include "daemon/tenant_rules.h"
#include "keystore/access_directory.h"
#include "policy/totp.h"
#include "protocol/session_types.h"

namespace kmsd {
namespace {

// The key a principal's TOTP seed is wrapped under (by name: an alias can be
// pointed elsewhere), and the context that binds the wrapped seed to its
// principal (its keys are reserved: no request can name them).
constexpr std::string_view kSeedKey = "secrets-key";

EncryptionContext SeedContext(std::string_view principal) {
  return {{"kmsd:purpose", "totp-seed"}, {"kmsd:principal", std::string(principal)}};
}

// The session table, without the sessions whose API key is no longer
// usable (revoked, expired, or gone with its principal or tenant).
Result<SessionTable*> SessionsOf(Call& call) {
  if (call.deps().sessions == nullptr || call.deps().lockout == nullptr) {
    return Error(Code::kInternal, "sessions are not served here");
  }
  const AccessDirectory& directory = call.hierarchy().access();
  call.deps().sessions->Prune(
      [&directory](const SessionInfo& info) { return !directory.KeyUsable(info.api_key_id); });
  return call.deps().sessions;
}

ops::SessionDescription Describe(const SessionInfo& info) {
  return {.id = info.id,
          .tenant = info.tenant,
          .principal = info.principal,
          .api_key_id = info.api_key_id,
          .mfa = info.mfa,
          .created_at = info.created_at,
          .last_used_at = info.last_used_at,
          .idle_timeout_seconds = static_cast<uint64_t>(info.idle_timeout_seconds)};
}

// The caller's TOTP code, checked against its enrolled seed; a wrong one is
// a failed attempt of the peer and the principal.
Status CheckTotp(Call& call, const PrincipalIdentity& principal, std::string_view code) {
  SessionTable& sessions = *call.deps().sessions;
  AuthLockout& lockout = *call.deps().lockout;
  const std::string who = principal.tenant + "/" + principal.name;
  // Checked again here, right before the code: requests queued before a
  // lockout began do not get through.
  RETURN_IF_ERROR(lockout.CheckTotp(call.caller(), who));
  std::optional<MfaSeedRecord> seed =
      call.hierarchy().access().MfaSeedOf(principal.tenant, principal.name);
  if (!seed) {
    lockout.FailedTotp(call.caller(), who);
    return Status(Code::kAccessDenied,
                  "principal '" + principal.name + "' has no TOTP seed: enroll it first");
  }
  ASSIGN_OR_RETURN(DecryptOutput unwrapped,
                   call.hierarchy().Decrypt(principal.tenant, seed->wrapped,
                                            SeedContext(principal.name), kSeedKey));
  Status checked =
      sessions.CheckTotp(principal.tenant, principal.name, unwrapped.plaintext.RevealSpan(), code);
  if (!checked.ok()) lockout.FailedTotp(call.caller(), who);
  return checked;
}

Result<ops::SessionLoginReply> Login(Call& call, const ops::SessionLoginRequest& request) {
  ASSIGN_OR_RETURN(SessionTable * sessions, SessionsOf(call));
  const PrincipalIdentity* principal = call.principal();
  if (principal == nullptr || !principal->session_id.empty()) {
    return Error(Code::kInvalidArgument,
                 "session.login is made with a tenant principal's API key, not as an admin or "
                 "with a session");
  }
  if (request.principal != principal->name) {
    return Error(Code::kInvalidArgument, "the API key is not principal '" +
                                             std::string(request.principal.substr(0, 64)) + "''s");
  }
  int64_t idle_timeout = kDefaultSessionTimeoutSeconds;
  std::optional<uint32_t> max_sessions;
  if (TenantRules* rules = call.deps().rules) {
    ASSIGN_OR_RETURN(std::shared_ptr<const TenantPolicy> policy, rules->PolicyOf(call.tenant()));
    if (policy && policy->session_timeout_minutes) {
      idle_timeout = int64_t{*policy->session_timeout_minutes} * 60;
    }
    if (policy) max_sessions = policy->max_concurrent_sessions;
  }
  // No room: refused before a code is spent on it.
  RETURN_IF_ERROR(sessions->CheckRoom(principal->tenant, max_sessions));
  if (request.totp) RETURN_IF_ERROR(CheckTotp(call, *principal, *request.totp));
  ASSIGN_OR_RETURN(NewSession opened, sessions->Open({.id = {},
                                                      .tenant = principal->tenant,
                                                      .principal = principal->name,
                                                      .api_key_id = principal->api_key_id,
                                                      .mfa = request.totp.has_value(),
                                                      .created_at = 0,
                                                      .last_used_at = 0,
                                                      .idle_timeout_seconds = idle_timeout},
                                                     max_sessions));
  ops::SessionLoginReply reply;
  static_cast<ops::SessionDescription&>(reply) = Describe(opened.info);
  reply.session = std::move(opened.token);
  return reply;
}

Result<ops::SessionDescription> Logout(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(SessionTable * sessions, SessionsOf(call));
  const PrincipalIdentity* principal = call.principal();
  if (principal == nullptr || principal->session_id.empty()) {
    return Error(Code::kInvalidArgument, "session.logout is made with the session it ends");
  }
  ASSIGN_OR_RETURN(SessionInfo closed, sessions->Close(call.tenant(), principal->session_id));
  return Describe(closed);
}

Result<ops::SessionListReply> List(Call& call, const NoFields&) {
  ASSIGN_OR_RETURN(SessionTable * sessions, SessionsOf(call));
  ops::SessionListReply out;
  for (const SessionInfo& info : sessions->List(call.tenant())) {
    out.sessions.push_back(Describe(info));
  }
  return out;
}

Result<ops::SessionDescription> Revoke(Call& call, const ops::SessionArg& request) {
  ASSIGN_OR_RETURN(SessionTable * sessions, SessionsOf(call));
  ASSIGN_OR_RETURN(SessionInfo closed, sessions->Close(call.tenant(), request.id));
  return Describe(closed);
}

// A new seed ends the principal's sessions: those opened with a code of the
// old one are not MFA any more.
Result<ops::MfaEnrollReply> Enroll(Call& call, const ops::MfaEnrollRequest& request) {
  ASSIGN_OR_RETURN(SessionTable * sessions, SessionsOf(call));
  AccessDirectory& directory = call.hierarchy().access();
  RETURN_IF_ERROR(directory.DescribePrincipal(call.tenant(), request.principal));
  RETURN_IF_ERROR(
      CheckMayActAs(call, request.principal,
                    "enroll the TOTP seed of principal '" + std::string(request.principal) + "'"));
  SecretBuffer seed(kTotpSeedBytes);
  RETURN_IF_ERROR(call.token().GenerateRandom({seed.RevealMutableData(), seed.size()}));
  ASSIGN_OR_RETURN(EncryptOutput wrapped,
                   call.hierarchy().Encrypt(call.tenant(), kSeedKey, seed.RevealSpan(),
                                            SeedContext(request.principal)));
  RETURN_IF_ERROR(
      directory.SetMfaSeed(call.tenant(), request.principal, std::move(wrapped.ciphertext)));
  sessions->Prune([&](const SessionInfo& info) {
    return info.tenant == call.tenant() && info.principal == request.principal;
  });
  spdlog::info("tenant {}: TOTP seed enrolled for principal {}", call.tenant(), request.principal);
  ops::MfaEnrollReply reply;
  reply.tenant = std::string(call.tenant());
  reply.principal = std::string(request.principal);
  reply.secret = Base32Encode(seed.RevealSpan());
  reply.otpauth_uri = OtpauthUri(seed.RevealSpan(), "kmsd",
                                 std::string(call.tenant()) + "/" + std::string(request.principal));
  return reply;
}

}  // namespace

void AddSessionHandlers(HandlerTable& table) {
  table.Add<ops::SessionLogin, Login>();
  table.Add<ops::SessionLogout, Logout>();
  table.Add<ops::SessionList, List>();
  table.Add<ops::SessionRevoke, Revoke>();
  table.Add<ops::MfaEnroll, Enroll>();
}

}  // namespace kmsd
