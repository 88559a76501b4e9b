// Requests and replies of sessions and MFA (docs/PROTOCOL.md, "Sessions and
// MFA"): session.login opens a session for the API key's principal (with a
// TOTP code when it has enrolled), session.logout ends the one a request is
// made with, session.list and session.revoke are a manager's; mfa.enroll
// gives a principal a TOTP seed. A session token and a TOTP seed travel only
// in the replies that make them, as SecretBuffers. Same rules as
// protocol/operation_types.h. Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/access_types.h"
#include "protocol/secret_buffer.h"

namespace kmsd {

namespace wire {
inline constexpr std::string_view kIdleTimeoutSeconds = "idle_timeout_seconds";
inline constexpr std::string_view kMfa = "mfa";
inline constexpr std::string_view kOtpauthUri = "otpauth_uri";
inline constexpr std::string_view kSession = "session";
inline constexpr std::string_view kSessions = "sessions";
inline constexpr std::string_view kTotp = "totp";
inline constexpr std::string_view kApiKeyId = "api_key_id";
}  // namespace wire

// A session token's text: kmsd_st_<16 hex digits>_<43 base64url characters>
// (protocol/credential_text.h).
inline constexpr std::string_view kSessionTokenPrefix = "kmsd_st_";

namespace ops {

struct SessionLoginRequest {
  // The API key's principal, named as a check (INVALID_ARGUMENT when it is
  // another).
  std::string_view principal;
  std::optional<std::string_view> totp;  // 6 digits, when enrolled
  static constexpr auto kFields =
      std::tuple{Field{wire::kPrincipal, &SessionLoginRequest::principal},
                 Field{wire::kTotp, &SessionLoginRequest::totp}};
};

struct SessionDescription {
  std::string id;  // 16 hex digits, also in the token's text
  std::string tenant;
  std::string principal;
  std::string api_key_id;  // the key it was opened with
  bool mfa = false;        // opened with a TOTP code
  int64_t created_at = 0;
  int64_t last_used_at = 0;
  uint64_t idle_timeout_seconds = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &SessionDescription::id},
                 Field{wire::kTenant, &SessionDescription::tenant},
                 Field{wire::kPrincipal, &SessionDescription::principal},
                 Field{wire::kApiKeyId, &SessionDescription::api_key_id},
                 Field{wire::kMfa, &SessionDescription::mfa},
                 Field{wire::kCreatedAt, &SessionDescription::created_at},
                 Field{wire::kLastUsedAt, &SessionDescription::last_used_at},
                 Field{wire::kIdleTimeoutSeconds, &SessionDescription::idle_timeout_seconds}};
};

// The one reply that carries the session's token.
struct SessionLoginReply : SessionDescription {
  SecretBuffer session;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &SessionLoginReply::id},
                 Field{wire::kTenant, &SessionLoginReply::tenant},
                 Field{wire::kPrincipal, &SessionLoginReply::principal},
                 Field{wire::kApiKeyId, &SessionLoginReply::api_key_id},
                 Field{wire::kMfa, &SessionLoginReply::mfa},
                 Field{wire::kCreatedAt, &SessionLoginReply::created_at},
                 Field{wire::kLastUsedAt, &SessionLoginReply::last_used_at},
                 Field{wire::kIdleTimeoutSeconds, &SessionLoginReply::idle_timeout_seconds},
                 Field{wire::kSession, &SessionLoginReply::session}};
};

struct SessionListReply {
  std::vector<SessionDescription> sessions;
  static constexpr auto kFields = std::tuple{Field{wire::kSessions, &SessionListReply::sessions}};
};

struct SessionArg {
  std::string_view id;
  static constexpr auto kFields = std::tuple{Field{wire::kId, &SessionArg::id}};
};

struct MfaEnrollRequest {
  std::string_view principal;
  static constexpr auto kFields = std::tuple{Field{wire::kPrincipal, &MfaEnrollRequest::principal}};
};

// The seed, once: base32 (`secret`) and as an otpauth:// URI for
// authenticator apps (SHA1, 6 digits, 30 s).
struct MfaEnrollReply {
  std::string tenant;
  std::string principal;
  SecretBuffer secret;
  SecretBuffer otpauth_uri;
  static constexpr auto kFields =
      std::tuple{Field{wire::kTenant, &MfaEnrollReply::tenant},
                 Field{wire::kPrincipal, &MfaEnrollReply::principal},
                 Field{wire::kSecret, &MfaEnrollReply::secret},
                 Field{wire::kOtpauthUri, &MfaEnrollReply::otpauth_uri}};
};

using SessionLogin = Op<OpId::kSessionLogin, SessionLoginRequest, SessionLoginReply>;
using SessionLogout = Op<OpId::kSessionLogout, NoFields, SessionDescription>;
using SessionList = Op<OpId::kSessionList, NoFields, SessionListReply>;
using SessionRevoke = Op<OpId::kSessionRevoke, SessionArg, SessionDescription>;
using MfaEnroll = Op<OpId::kMfaEnroll, MfaEnrollRequest, MfaEnrollReply>;

}  // namespace ops
}  // namespace kmsd
