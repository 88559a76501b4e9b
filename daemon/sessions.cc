#include "daemon/sessions.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "daemon/alerts.h"
#include "policy/totp.h"
#include "protocol/credential_text.h"
#include "protocol/sha256.h"

namespace kmsd {
namespace {

Status NotValid() { return Status(Code::kAccessDenied, "the session is not valid"); }

// The id of a well-formed token.
std::optional<std::string_view> IdOf(std::string_view token) {
  return CredentialIdOf(token, kSessionTokenPrefix);
}

}  // namespace

bool IsSessionToken(std::string_view credential) {
  return credential.starts_with(kSessionTokenPrefix);
}

Result<NewSession> SessionTable::Open(SessionInfo info, std::optional<uint32_t> max_sessions) {
  std::array<uint8_t, kCredentialIdBytes> id_bytes{};
  SecretBuffer secret(kCredentialSecretBytes);
  if (RAND_bytes(id_bytes.data(), static_cast<int>(id_bytes.size())) != 1 ||
      RAND_bytes(secret.RevealMutableData(), static_cast<int>(secret.size())) != 1) {
    return Error(Code::kInternal, "no random bytes for a session token");
  }
  std::string id(2 * kCredentialIdBytes, '\0');
  HexEncode(id_bytes, id.data());
  NewSession out{.token = CredentialText(kSessionTokenPrefix, id, secret.RevealSpan()),
                 .info = std::move(info)};
  Entry entry{.info = out.info,
              .digest = Sha256Of(
                  {reinterpret_cast<const char*>(out.token.RevealData()), out.token.size()})};

  const int64_t now = clock_.NowSeconds();
  std::lock_guard lock(mu_);
  PurgeExpired(now);
  RETURN_IF_ERROR(Room(out.info.tenant, max_sessions));
  out.info.id = id;
  out.info.created_at = now;
  out.info.last_used_at = now;
  entry.info = out.info;
  if (!sessions_.emplace(id, std::move(entry)).second) {
    return Error(Code::kInternal, "session id taken");  // 2^-64: never
  }
  return out;
}

Status SessionTable::CheckRoom(std::string_view tenant, std::optional<uint32_t> max_sessions) {
  std::lock_guard lock(mu_);
  PurgeExpired(clock_.NowSeconds());
  return Room(tenant, max_sessions);
}

Status SessionTable::Room(std::string_view tenant, std::optional<uint32_t> max_sessions) const {
  if (sessions_.size() >= kMaxSessions) {
    return Status(Code::kQuotaExceeded,
                  "kmsd holds " + std::to_string(sessions_.size()) + " sessions, its most");
  }
  if (!max_sessions) return OkStatus();
  const auto live = std::count_if(sessions_.begin(), sessions_.end(),
                                  [&](const auto& s) { return s.second.info.tenant == tenant; });
  if (static_cast<uint64_t>(live) < *max_sessions) return OkStatus();
  return Status(Code::kQuotaExceeded, "tenant '" + std::string(tenant) + "' has " +
                                          std::to_string(live) +
                                          " sessions: its policy's max_concurrent_sessions");
}

Result<SessionInfo> SessionTable::Authenticate(std::string_view token, bool* forged) {
  const std::optional<std::string_view> id = IdOf(token);
  if (!id) {
    if (forged != nullptr) *forged = true;
    return Error(NotValid());
  }
  const std::array<uint8_t, 32> digest = Sha256Of(token);
  const int64_t now = clock_.NowSeconds();
  std::lock_guard lock(mu_);
  auto it = sessions_.find(*id);
  if (it == sessions_.end()) return Error(NotValid());
  if (CRYPTO_memcmp(it->second.digest.data(), digest.data(), digest.size()) != 0) {
    if (forged != nullptr) *forged = true;
    return Error(NotValid());
  }
  if (Expired(it->second, now)) {
    const std::string expired = it->second.info.id;
    sessions_.erase(it);
    return Error(Code::kAccessDenied, "session " + expired + " expired: idle too long");
  }
  it->second.info.last_used_at = now;
  return it->second.info;
}

Result<SessionInfo> SessionTable::Close(std::string_view tenant, std::string_view id) {
  std::lock_guard lock(mu_);
  PurgeExpired(clock_.NowSeconds());
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.info.tenant != tenant) {
    return Error(Code::kNotFound, "no session " +
                                      std::string(id.substr(0, 2 * kCredentialIdBytes)) +
                                      " in tenant '" + std::string(tenant) + "'");
  }
  SessionInfo info = it->second.info;
  sessions_.erase(it);
  return info;
}

std::vector<SessionInfo> SessionTable::List(std::string_view tenant) {
  std::lock_guard lock(mu_);
  PurgeExpired(clock_.NowSeconds());
  std::vector<SessionInfo> out;
  for (const auto& [id, entry] : sessions_) {
    if (entry.info.tenant == tenant) out.push_back(entry.info);
  }
  return out;
}

size_t SessionTable::Count() {
  std::lock_guard lock(mu_);
  PurgeExpired(clock_.NowSeconds());
  return sessions_.size();
}

void SessionTable::Prune(const std::function<bool(const SessionInfo&)>& dead) {
  std::lock_guard lock(mu_);
  std::erase_if(sessions_, [&](const auto& entry) { return dead(entry.second.info); });
}

void SessionTable::PurgeExpired(int64_t now) {
  std::erase_if(sessions_, [&](const auto& entry) { return Expired(entry.second, now); });
}

Status SessionTable::CheckTotp(std::string_view tenant, std::string_view principal,
                               std::span<const uint8_t> seed, std::string_view code) {
  const std::string who = std::string(tenant) + "/" + std::string(principal);
  std::lock_guard lock(mu_);
  std::optional<uint64_t> last;
  if (auto it = last_totp_step_.find(who); it != last_totp_step_.end()) last = it->second;
  ASSIGN_OR_RETURN(uint64_t step, VerifyTotp(seed, code, clock_.NowSeconds(), last));
  last_totp_step_[who] = step;
  return OkStatus();
}

namespace {
// The lockout's subject for a principal's TOTP codes.
std::string TotpSubject(const std::string& principal) {
  return "TOTP codes of principal " + principal;
}
}  // namespace

Status AuthLockout::CheckTotp(const Peer& peer, const std::string& principal) {
  RETURN_IF_ERROR(CheckPeer(peer));
  if (!any_failure_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(mu_);
  return attempts_.Check(TotpSubject(principal), NowMs());
}

void AuthLockout::FailedTotp(const Peer& peer, const std::string& principal) {
  Failed(peer, principal, "a TOTP code");
  FailedAttempts::Counted counted;
  {
    std::lock_guard lock(mu_);
    any_failure_.store(true, std::memory_order_release);
    counted = attempts_.Failed(TotpSubject(principal), NowMs());
  }
  if (counted.newly_locked) {
    Alert(TotpSubject(principal), TotpSubject(principal) + " locked out after " +
                                      std::to_string(counted.failures) + " failed attempts");
  }
}

void AuthLockout::Alert(const std::string& subject, const std::string& message) {
  if (alerts_ != nullptr) {
    alerts_->Raise(AlertKind::kLockout, subject, message);
  } else {
    spdlog::warn("ALERT: {}", message);
  }
}

Status AuthLockout::CheckPeer(const Peer& who) {
  if (!any_failure_.load(std::memory_order_acquire) || Exempt(who)) return OkStatus();
  std::lock_guard lock(mu_);
  return attempts_.Check("uid " + std::to_string(who.uid), NowMs());
}

void AuthLockout::Failed(const Peer& who, const std::optional<std::string>& principal,
                         std::string_view what) {
  if (Exempt(who)) return;
  const int64_t now = NowMs();
  const std::string peer = "uid " + std::to_string(who.uid);
  FailedAttempts::Counted counted, named;
  {
    std::lock_guard lock(mu_);
    any_failure_.store(true, std::memory_order_release);
    counted = attempts_.Failed(peer, now);
    if (principal) named = attempts_.Failed("principal " + *principal, now);
  }
  if (counted.newly_locked) {
    Alert(peer, peer + " locked out after " + std::to_string(counted.failures) +
                    " failed attempts (last: " + std::string(what) + ")");
  }
  if (named.newly_locked) {
    Alert("principal " + *principal, std::to_string(named.failures) +
                                         " failed attempts in the name of principal " + *principal +
                                         " (last: " + std::string(what) + " from " + peer + ")");
  }
}

}  // namespace kmsd
