// Sessions and failed attempts (docs/PROTOCOL.md, "Sessions and MFA").
//
// SessionTable: the sessions tenant principals open with session.login. A
// session token is text secret scanners can find, sent where an API key
// goes:
//
//   kmsd_st_<id: 16 hex digits>_<43 base64url characters: 32 random bytes>
//
// Only its SHA-256 is kept, in memory: a restart of kmsd ends every session.
// A session lives while it is used: one idle for longer than its tenant's
// policy's session_timeout_minutes at login (default 60) is gone; the
// policy's max_concurrent_sessions caps the live sessions of a tenant
// (QUOTA_EXCEEDED). A session acts as the API key it was opened with, and
// ends with it (the identify stage checks the key on every request). It
// also keeps each principal's last TOTP step accepted, so that a code is
// not accepted twice.
//
// AuthLockout: failed API-key, session and TOTP attempts counted per peer
// (its uid) and per principal (policy/lockout.h). A peer past the threshold
// is locked out for a growing delay: its requests with credentials are
// refused before they are checked. A principal past it is not locked out
// (anyone could fail in its name), but both log an ALERT line. Peers the
// caller exempts (admins: they may do everything without a credential, so
// guessing one gains them nothing) are neither counted nor held.
//
// Both thread-safe (one mutex each); times from the clock given.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/access.h"
#include "policy/lockout.h"
#include "protocol/clock.h"
#include "protocol/secret_buffer.h"
#include "protocol/session_types.h"
#include "protocol/status.h"

namespace kmsd {

class Alerts;

inline constexpr int64_t kDefaultSessionTimeoutSeconds = 3600;
// Live sessions of all tenants (each a few hundred bytes).
inline constexpr size_t kMaxSessions = 100000;

struct SessionInfo {
  std::string id;
  std::string tenant;
  std::string principal;
  std::string api_key_id;
  bool mfa = false;
  int64_t created_at = 0;
  int64_t last_used_at = 0;
  int64_t idle_timeout_seconds = 0;
};

struct NewSession {
  SecretBuffer token;
  SessionInfo info;
};

bool IsSessionToken(std::string_view credential);

class SessionTable {
 public:
  explicit SessionTable(const Clock& clock) : clock_(clock) {}

  // QUOTA_EXCEEDED when the tenant has `max_sessions` live ones, or kmsd
  // kMaxSessions in all.
  Result<NewSession> Open(SessionInfo info, std::optional<uint32_t> max_sessions);
  // Open's refusal, asked before anything is spent on a login.
  Status CheckRoom(std::string_view tenant, std::optional<uint32_t> max_sessions);
  // The live session `token` names, its last use now. ACCESS_DENIED "the
  // session is not valid" for a malformed, unknown or wrong token, "session
  // ID expired" for one idle too long (then forgotten). `forged`, when
  // given, is set for a malformed token or a wrong secret for a live id (a
  // failed attempt); an unknown id is most likely a session that ended.
  Result<SessionInfo> Authenticate(std::string_view token, bool* forged = nullptr);
  // Forgets the sessions `dead` says are over (their key revoked, expired or
  // gone with its principal or tenant).
  void Prune(const std::function<bool(const SessionInfo&)>& dead);
  // Ends a session; NOT_FOUND unless it is the tenant's and live.
  Result<SessionInfo> Close(std::string_view tenant, std::string_view id);
  std::vector<SessionInfo> List(std::string_view tenant);
  // Sessions open in every tenant (for `status`).
  size_t Count();

  // Checks `code` against `seed` for the principal (policy/totp.h) and
  // remembers its step: OK, or ACCESS_DENIED (not valid, already used).
  Status CheckTotp(std::string_view tenant, std::string_view principal,
                   std::span<const uint8_t> seed, std::string_view code);

 private:
  struct Entry {
    SessionInfo info;
    std::array<uint8_t, 32> digest{};
  };
  bool Expired(const Entry& entry, int64_t now) const {
    return now - entry.info.last_used_at > entry.info.idle_timeout_seconds;
  }
  void PurgeExpired(int64_t now);                                                    // mu_ held
  Status Room(std::string_view tenant, std::optional<uint32_t> max_sessions) const;  // mu_ held

  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> sessions_;           // by id
  std::map<std::string, uint64_t, std::less<>> last_totp_step_;  // by "tenant/principal"
};

class AuthLockout {
 public:
  explicit AuthLockout(LockoutOptions options = {},
                       std::function<bool(const Peer&)> exempt = nullptr)
      : attempts_(options), exempt_(std::move(exempt)) {}

  // OK, or ACCESS_DENIED with a retry-after while the peer is locked out.
  Status CheckPeer(const Peer& peer);
  // A failed attempt of the peer, in the name of `principal`
  // ("TENANT/NAME") when it is known; `what` says which (for the alert).
  void Failed(const Peer& peer, const std::optional<std::string>& principal, std::string_view what);
  // TOTP codes are also counted and held per principal ("TENANT/NAME"),
  // whatever the peer: only a holder of its API key can try one, so its
  // failures are no one else's.
  Status CheckTotp(const Peer& peer, const std::string& principal);
  void FailedTotp(const Peer& peer, const std::string& principal);

  // Lockouts are raised as alerts (kLockout) there from now on; without,
  // they are only logged. `alerts` must outlive this.
  void ReportTo(Alerts* alerts) { alerts_ = alerts; }

 private:
  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  bool Exempt(const Peer& peer) const { return exempt_ && exempt_(peer); }
  void Alert(const std::string& subject, const std::string& message);
  Alerts* alerts_ = nullptr;

  std::mutex mu_;
  FailedAttempts attempts_;
  const std::function<bool(const Peer&)> exempt_;
  // No failure yet: every check passes without the lock (the common case).
  std::atomic<bool> any_failure_{false};
};

}  // namespace kmsd
