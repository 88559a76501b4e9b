#include "daemon/sessions.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "policy/totp.h"

namespace kmsd {
namespace {

constexpr size_t kIdHexDigits = 16;
constexpr size_t kSecretBytes = 32;
constexpr size_t kSecretChars = 43;  // base64url of 32 bytes, unpadded
constexpr size_t kTokenSize = kSessionTokenSize;
static_assert(kTokenSize == kSessionTokenPrefix.size() + kIdHexDigits + 1 + kSecretChars);

Status NotValid() { return Status(Code::kAccessDenied, "the session is not valid"); }

std::array<uint8_t, 32> DigestOf(std::string_view token) {
  std::array<uint8_t, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  return digest;
}

// The id of a well-formed token.
std::optional<std::string_view> IdOf(std::string_view token) {
  if (token.size() != kTokenSize || !token.starts_with(kSessionTokenPrefix)) return std::nullopt;
  const std::string_view id = token.substr(kSessionTokenPrefix.size(), kIdHexDigits);
  const bool hex = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex || token[kSessionTokenPrefix.size() + kIdHexDigits] != '_') return std::nullopt;
  return id;
}

std::string Base64Url(std::span<const uint8_t> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(kSecretChars + 1);  // no reallocation leaves a copy behind
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(buffer >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (6 - bits)) & 0x3f]);
  return out;
}

}  // namespace

bool IsSessionToken(std::string_view credential) {
  return credential.starts_with(kSessionTokenPrefix);
}

Result<NewSession> SessionTable::Open(SessionInfo info, std::optional<uint32_t> max_sessions) {
  std::array<uint8_t, 8 + kSecretBytes> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    return Error(Code::kInternal, "no random bytes for a session token");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (size_t i = 0; i < 8; ++i) {
    id.push_back(kHex[random[i] >> 4]);
    id.push_back(kHex[random[i] & 0xf]);
  }
  std::string secret = Base64Url(std::span(random).subspan(8));
  OPENSSL_cleanse(random.data(), random.size());
  std::string text = std::string(kSessionTokenPrefix) + id + "_" + secret;
  OPENSSL_cleanse(secret.data(), secret.size());
  NewSession out{.token = SecretBuffer::CopyOf(text), .info = std::move(info)};
  Entry entry{.info = out.info, .digest = DigestOf(text)};
  OPENSSL_cleanse(text.data(), text.size());

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
  const std::array<uint8_t, 32> digest = DigestOf(token);
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
    return Error(Code::kNotFound, "no session " + std::string(id.substr(0, kIdHexDigits)) +
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

Status AuthLockout::CheckTotp(const Peer& peer, const std::string& principal) {
  RETURN_IF_ERROR(CheckPeer(peer));
  if (!any_failure_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(mu_);
  return attempts_.Check("TOTP codes of principal " + principal, NowMs());
}

void AuthLockout::FailedTotp(const Peer& peer, const std::string& principal) {
  Failed(peer, principal, "a TOTP code");
  FailedAttempts::Counted counted;
  {
    std::lock_guard lock(mu_);
    any_failure_.store(true, std::memory_order_release);
    counted = attempts_.Failed("TOTP codes of principal " + principal, NowMs());
  }
  if (counted.newly_locked) {
    spdlog::warn("ALERT: TOTP codes of principal {} locked out after {} failed attempts", principal,
                 counted.failures);
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
    spdlog::warn("ALERT: {} locked out after {} failed attempts (last: {})", peer, counted.failures,
                 what);
  }
  if (named.newly_locked) {
    spdlog::warn("ALERT: {} failed attempts in the name of principal {} (last: {} from {})",
                 named.failures, *principal, what, peer);
  }
}

}  // namespace kmsd
