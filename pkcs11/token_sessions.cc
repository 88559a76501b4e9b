// Token's sessions: opening them, the pool, and losing and reconnecting the
// token (token.h, "Losing the token").
#include <spdlog/spdlog.h>

#include <cstdio>

#include "pkcs11/internal/text_fields.h"
#include "pkcs11/softhsm_files.h"
#include "pkcs11/token.h"

namespace kmsd::pkcs11 {
namespace {

using internal::Trim;

std::string RvText(CK_RV rv) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(rv));
  return buf;
}

// Answers that say the device, the token, the sessions or the login are gone.
bool SaysLost(CK_RV rv) {
  switch (rv) {
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return true;
    default:
      return false;
  }
}

// Answers a lost token may give instead: SoftHSM2 2.6.1, once it cannot read
// its token directory, answers CKR_OBJECT_HANDLE_INVALID for every token
// object and CKR_GENERAL_ERROR for C_GetTokenInfo, C_Login and C_GenerateKey.
bool MayMeanLost(CK_RV rv) {
  switch (rv) {
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_WRAPPING_KEY_HANDLE_INVALID:
    case CKR_UNWRAPPING_KEY_HANDLE_INVALID:
    case CKR_GENERAL_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

Token::Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, TokenInfo info, SecretBuffer pin,
             size_t pool_size)
    : module_(std::move(module)),
      fn_(module_->functions()),
      info_(std::move(info)),
      pin_(std::move(pin)),
      pool_size_(std::max<size_t>(pool_size, 1)),
      slot_(slot) {}

Result<std::unique_ptr<Token>> Token::Open(std::shared_ptr<Module> module, std::string_view label,
                                           const SecretBuffer& user_pin, size_t pool_size) {
  ASSIGN_OR_RETURN(CK_SLOT_ID slot, module->FindSlotByTokenLabel(label));
  CK_TOKEN_INFO raw{};
  RETURN_IF_ERROR(FromRv(module->functions()->C_GetTokenInfo(slot, &raw), "C_GetTokenInfo"));
  TokenInfo info{
      Trim(raw.label, sizeof raw.label), Trim(raw.manufacturerID, sizeof raw.manufacturerID),
      Trim(raw.model, sizeof raw.model), slot, Trim(raw.serialNumber, sizeof raw.serialNumber)};
  std::unique_ptr<Token> token(new Token(std::move(module), slot, std::move(info),
                                         SecretBuffer::CopyOf(user_pin.RevealSpan()), pool_size));
  RETURN_IF_ERROR(token->OpenSessions(slot));
  return token;
}

Token::~Token() {
  for (CK_SESSION_HANDLE session : all_sessions_) fn_->C_CloseSession(session);
  if (holder_session_ != CK_INVALID_HANDLE) {
    fn_->C_Logout(holder_session_);
    fn_->C_CloseSession(holder_session_);
  }
}

// C_Login has just rewritten SoftHSM2's token.object: copy it while it is
// whole (softhsm_files.h). Other modules have nothing to copy.
void Token::KeepSoftHsmTokenObjectCopy() const {
  const auto& token_root = module_->softhsm_token_root();
  if (!token_root) return;
  if (Status kept = KeepTokenObjectCopy(*token_root, info_.serial); !kept.ok()) {
    spdlog::warn("cannot keep a copy of SoftHSM2's token.object: {}", kept.ToString());
  }
}

Status Token::OpenSessions(CK_SLOT_ID slot) {
  const CK_FLAGS flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
  std::vector<CK_SESSION_HANDLE> opened;
  auto close_opened = [&] {
    for (CK_SESSION_HANDLE session : opened) fn_->C_CloseSession(session);
  };
  CK_SESSION_HANDLE holder;
  RETURN_IF_ERROR(
      FromRv(fn_->C_OpenSession(slot, flags, nullptr, nullptr, &holder), "C_OpenSession"));
  opened.push_back(holder);
  // Login state is per application: one login covers every session.
  CK_RV rv =
      fn_->C_Login(holder, CKU_USER, const_cast<CK_UTF8CHAR*>(pin_.RevealData()), pin_.size());
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    close_opened();
    // Trying a refused PIN again would count towards locking it.
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ||
        rv == CKR_PIN_LEN_RANGE) {
      pin_refused_ = true;
    }
    return FromRv(rv, "C_Login");
  }
  KeepSoftHsmTokenObjectCopy();
  std::vector<CK_SESSION_HANDLE> pool;
  for (size_t i = 0; i < pool_size_; ++i) {
    CK_SESSION_HANDLE session;
    if (Status s =
            FromRv(fn_->C_OpenSession(slot, flags, nullptr, nullptr, &session), "C_OpenSession");
        !s.ok()) {
      close_opened();
      return s;
    }
    opened.push_back(session);
    pool.push_back(session);
  }
  holder_session_ = holder;
  std::lock_guard lock(pool_mu_);
  all_sessions_ = pool;
  free_sessions_ = std::move(pool);
  slot_.store(slot);
  return OkStatus();
}

Status Token::Unavailable() const {
  std::lock_guard lock(reason_mu_);
  return Status(Code::kTokenUnavailable, "token '" + info_.label + "' is unavailable (" +
                                             lost_reason_ +
                                             "); kmsd reconnects by itself when it is back");
}

void Token::MarkLost(const std::string& reason) {
  {
    std::lock_guard why(reason_mu_);
    std::lock_guard lock(pool_mu_);
    if (!lost_.exchange(true, std::memory_order_acq_rel)) {
      lost_reason_ = reason;
      spdlog::error("token '{}' lost: {}; every request now answers TOKEN_UNAVAILABLE", info_.label,
                    reason);
    }
  }
  pool_cv_.notify_all();
}

bool Token::Answers() {
  CK_TOKEN_INFO info{};
  return fn_->C_GetTokenInfo(slot_.load(), &info) == CKR_OK;
}

Status Token::Check(CK_RV rv, std::string_view call) {
  if (rv == CKR_OK) return OkStatus();
  if (SaysLost(rv)) {
    MarkLost(FromRv(rv, call).message());
    return Unavailable();
  }
  if (MayMeanLost(rv)) {
    CK_TOKEN_INFO info{};
    if (CK_RV probe = fn_->C_GetTokenInfo(slot_.load(), &info); probe != CKR_OK) {
      MarkLost(std::string(call) + " failed with CK_RV " + RvText(rv) +
               " and C_GetTokenInfo with CK_RV " + RvText(probe));
      return Unavailable();
    }
  }
  return FromRv(rv, call);
}

Status Token::EnsureConnected() {
  if (!lost_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(reconnect_mu_);
  if (!lost_.load(std::memory_order_acquire)) return OkStatus();  // another thread did
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_ || pin_refused_) return Unavailable();
  next_attempt_ = now + kReconnectInterval;
  if (Status status = Reconnect(); !status.ok()) {
    if (failed_attempts_++ == 0) {
      spdlog::warn("token '{}': cannot reconnect yet: {}", info_.label, status.ToString());
    }
    {
      std::lock_guard why(reason_mu_);
      lost_reason_ = status.message();
      if (pin_refused_) {
        lost_reason_ += "; the token refuses the PIN: no more attempts, restart kmsd";
        spdlog::error("token '{}': {}", info_.label, lost_reason_);
      }
    }
    return Unavailable();
  }
  spdlog::warn(
      "token '{}' reconnected (sessions and login renewed, generation {}) after {} "
      "failed attempt(s)",
      info_.label, generation(), failed_attempts_);
  failed_attempts_ = 0;
  return OkStatus();
}

Status Token::Reconnect() {
  std::lock_guard holder(holder_mu_);
  std::vector<CK_SESSION_HANDLE> old;
  {
    // Sessions in use come back at their call's end; none is handed out while lost.
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return free_sessions_.size() == all_sessions_.size(); });
    old = std::exchange(all_sessions_, {});
    free_sessions_.clear();
  }
  if (holder_session_ != CK_INVALID_HANDLE) {
    old.push_back(std::exchange(holder_session_, CK_INVALID_HANDLE));
  }
  // Most are gone already; closing them also ends the session objects of the
  // ones a module kept, so that no version is used from two generations.
  for (CK_SESSION_HANDLE session : old) fn_->C_CloseSession(session);
  ASSIGN_OR_RETURN(CK_SLOT_ID slot, module_->FindSlotByTokenLabel(info_.label));
  RETURN_IF_ERROR(OpenSessions(slot));
  if (Status remapped = RemapObjectsLocked(); !remapped.ok()) {
    std::lock_guard lock(pool_mu_);
    for (CK_SESSION_HANDLE session : all_sessions_) fn_->C_CloseSession(session);
    fn_->C_CloseSession(std::exchange(holder_session_, CK_INVALID_HANDLE));
    all_sessions_.clear();
    free_sessions_.clear();
    return remapped;
  }
  {
    std::lock_guard lock(pool_mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    lost_.store(false, std::memory_order_release);
  }
  pool_cv_.notify_all();
  return OkStatus();
}

Result<std::unique_lock<std::mutex>> Token::LockHolder() {
  RETURN_IF_ERROR(EnsureConnected());
  std::unique_lock lock(holder_mu_);
  if (lost_.load(std::memory_order_acquire) || holder_session_ == CK_INVALID_HANDLE) {
    return Error(Unavailable());
  }
  return lock;
}

Result<Token::Lease> Token::AcquireSession(const KeyRef* key) {
  RETURN_IF_ERROR(EnsureConnected());
  std::unique_lock lock(pool_mu_);
  pool_cv_.wait(lock, [&] { return lost_.load() || !free_sessions_.empty(); });
  if (lost_.load()) {
    lock.unlock();
    return Error(Unavailable());
  }
  const uint64_t generation = generation_.load();
  if (key != nullptr && key->generation && *key->generation != generation) {
    return Error(Code::kTokenUnavailable,
                 "token '" + info_.label + "' was reconnected since this key was unwrapped");
  }
  CK_SESSION_HANDLE session = free_sessions_.back();
  free_sessions_.pop_back();
  return Lease{session, generation};
}

void Token::ReleaseSession(CK_SESSION_HANDLE session) {
  {
    std::lock_guard lock(pool_mu_);
    free_sessions_.push_back(session);
  }
  // A reconnection may be waiting for the last session besides the requests.
  pool_cv_.notify_all();
}

void Token::DestroySessionObject(const KeyRef& key) {
  // Gone with its session, or going with it at the reconnection.
  auto stale = [&] { return key.generation && *key.generation != generation(); };
  if (lost_.load(std::memory_order_acquire) || stale()) return;
  std::lock_guard lock(holder_mu_);
  if (lost_.load() || holder_session_ == CK_INVALID_HANDLE || stale()) return;
  (void)Check(fn_->C_DestroyObject(holder_session_, key.handle), "C_DestroyObject");
}

Status Token::Ping() {
  ASSIGN_OR_RETURN(auto lock, LockHolder());
  CK_TOKEN_INFO info{};
  if (CK_RV rv = fn_->C_GetTokenInfo(slot_.load(), &info); rv != CKR_OK) {
    MarkLost("C_GetTokenInfo failed with CK_RV " + RvText(rv));
    return Unavailable();
  }
  // A token taken out and put back between two calls leaves no error behind:
  // the sessions and the login are just gone.
  CK_SESSION_INFO session{};
  RETURN_IF_ERROR(Check(fn_->C_GetSessionInfo(holder_session_, &session), "C_GetSessionInfo"));
  if (session.state != CKS_RW_USER_FUNCTIONS) {
    MarkLost("the token's sessions are no longer logged in");
    return Unavailable();
  }
  return OkStatus();
}

}  // namespace kmsd::pkcs11
