#include "keystore/access_directory.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "protocol/credential_text.h"
#include "protocol/names.h"
#include "protocol/sha256.h"

namespace kmsd {

// One API key in memory. `record` and `verified` change only under the
// directory's mu_ held for writing; `last_used` is atomic.
struct AccessDirectory::KeyEntry {
  ApiKeyRecord record;
  // SHA-256 of the secret once the token's HMAC has matched it.
  std::optional<Digest> verified;
  std::atomic<int64_t> last_used{0};
  int64_t flushed_last_used = 0;  // guarded by write_mu_
};

namespace {

Status NotValid() { return Status(Code::kAccessDenied, "the API key is not valid"); }

// The id in a secret of the right shape, else nullopt.
std::optional<std::string_view> IdOf(std::string_view secret) {
  return CredentialIdOf(secret, kApiKeySecretPrefix);
}

std::span<const uint8_t> BytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

Status PrincipalNotFound(std::string_view tenant, std::string_view name) {
  return Status(Code::kNotFound, "principal '" + ShownName(name) + "' not found in tenant '" +
                                     ShownName(tenant) + "'");
}

}  // namespace

std::string_view ApiKeyStateName(ApiKeyState state) {
  switch (state) {
    case ApiKeyState::kActive:
      return "active";
    case ApiKeyState::kRevoked:
      return "revoked";
    case ApiKeyState::kExpired:
      return "expired";
  }
  return "unknown";
}

ApiKeyState StateOf(const ApiKeyRecord& key, int64_t now) {
  if (key.revoked_at) return ApiKeyState::kRevoked;
  if (key.expires_at && *key.expires_at <= now) return ApiKeyState::kExpired;
  return ApiKeyState::kActive;
}

AccessDirectory::AccessDirectory(KeyStore& store, pkcs11::Token& token,
                                 pkcs11::ObjectHandle hmac_key, const Clock& clock)
    : store_(store), token_(token), hmac_key_(hmac_key), clock_(clock) {}

AccessDirectory::~AccessDirectory() = default;

void AccessDirectory::Load(KeyStoreSnapshot& snapshot) {
  std::unique_lock lock(mu_);
  for (PrincipalRecord& p : snapshot.principals) {
    PrincipalKey key{p.tenant, p.name};
    principals_[std::move(key)] = std::make_shared<const PrincipalRecord>(std::move(p));
  }
  for (ApiKeyRecord& k : snapshot.api_keys) {
    auto entry = std::make_shared<KeyEntry>();
    const int64_t last_used = k.last_used_at.value_or(0);
    entry->record = std::move(k);
    entry->last_used = last_used;
    entry->flushed_last_used = last_used;
    keys_[entry->record.id] = std::move(entry);
  }
  std::map<std::string, RoleCatalog, std::less<>> roles;
  for (RoleRecord& role : snapshot.roles) {
    std::string tenant = role.tenant;
    std::string name = role.name;
    roles[tenant][std::move(name)] = std::move(role);
  }
  for (auto& [tenant, catalog] : roles) {
    roles_[tenant] = std::make_shared<const RoleCatalog>(std::move(catalog));
  }
  for (GrantRecord& grant : snapshot.grants) {
    std::string id = grant.id;
    grants_[std::move(id)] = std::move(grant);
  }
  for (TenantPolicyRecord& policy : snapshot.policies) {
    std::string tenant = policy.tenant;
    policies_[std::move(tenant)] = std::make_shared<const TenantPolicyRecord>(std::move(policy));
  }
  policy_count_.store(policies_.size(), std::memory_order_release);
  for (MfaSeedRecord& seed : snapshot.mfa_seeds) {
    PrincipalKey key{seed.tenant, seed.principal};
    mfa_seeds_[std::move(key)] = std::move(seed);
  }
  RebuildBoundPeers();
  Changed();
}

void AccessDirectory::RebuildBoundPeers() {
  bound_uids_.clear();
  bound_gids_.clear();
  for (const auto& [key, principal] : principals_) {
    bound_uids_.insert(principal->uids.begin(), principal->uids.end());
    bound_gids_.insert(principal->gids.begin(), principal->gids.end());
  }
}

bool AccessDirectory::IsBoundPeer(uint64_t uid, std::span<const uint64_t> gids) const {
  std::shared_lock lock(mu_);
  if (bound_uids_.contains(uid)) return true;
  return std::any_of(gids.begin(), gids.end(),
                     [&](uint64_t gid) { return bound_gids_.contains(gid); });
}

Result<PrincipalRecord> AccessDirectory::CreatePrincipal(PrincipalRecord record) {
  std::lock_guard write(write_mu_);
  record.created_at = clock_.NowSeconds();
  {
    std::shared_lock lock(mu_);
    if (principals_.contains(PrincipalKey{record.tenant, record.name})) {
      return Error(Code::kAlreadyExists, "principal '" + record.name +
                                             "' already exists in tenant '" + record.tenant + "'");
    }
  }
  RETURN_IF_ERROR(store_.WriteAccess(store_change::CreatePrincipal{record}));
  std::unique_lock lock(mu_);
  principals_[PrincipalKey{record.tenant, record.name}] =
      std::make_shared<const PrincipalRecord>(record);
  RebuildBoundPeers();
  Changed();
  return record;
}

Result<PrincipalRecord> AccessDirectory::DescribePrincipal(std::string_view tenant,
                                                           std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = principals_.find(PrincipalKey{tenant, name});
  if (it == principals_.end()) return Error(PrincipalNotFound(tenant, name));
  return *it->second;
}

std::vector<PrincipalRecord> AccessDirectory::ListPrincipals(std::string_view tenant) const {
  std::shared_lock lock(mu_);
  std::vector<PrincipalRecord> out;
  for (auto it = principals_.lower_bound(PrincipalKey{tenant, ""});
       it != principals_.end() && it->first.first == tenant; ++it) {
    out.push_back(*it->second);
  }
  return out;
}

Status AccessDirectory::DeletePrincipal(std::string_view tenant, std::string_view name) {
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    if (!principals_.contains(PrincipalKey{tenant, name})) return PrincipalNotFound(tenant, name);
  }
  RETURN_IF_ERROR(
      store_.WriteAccess(store_change::DeletePrincipal{std::string(tenant), std::string(name)}));
  std::unique_lock lock(mu_);
  principals_.erase(PrincipalKey{tenant, name});
  std::erase_if(keys_, [&](const auto& entry) {
    return entry.second->record.tenant == tenant && entry.second->record.principal == name;
  });
  std::erase_if(grants_, [&](const auto& entry) {
    return entry.second.tenant == tenant && entry.second.principal == name;
  });
  mfa_seeds_.erase(PrincipalKey{tenant, name});
  RebuildBoundPeers();
  Changed();
  return OkStatus();
}

Result<PrincipalRecord> AccessDirectory::SetPrincipalRoles(std::string_view tenant,
                                                           std::string_view name,
                                                           std::vector<std::string> roles) {
  std::lock_guard write(write_mu_);
  PrincipalRecord updated;
  {
    std::shared_lock lock(mu_);
    auto it = principals_.find(PrincipalKey{tenant, name});
    if (it == principals_.end()) return Error(PrincipalNotFound(tenant, name));
    updated = *it->second;
  }
  updated.roles = std::move(roles);
  RETURN_IF_ERROR(store_.WriteAccess(
      store_change::SetPrincipalRoles{updated.tenant, updated.name, updated.roles}));
  std::unique_lock lock(mu_);
  principals_[PrincipalKey{updated.tenant, updated.name}] =
      std::make_shared<const PrincipalRecord>(updated);
  Changed();
  return updated;
}

Result<NewApiKey> AccessDirectory::CreateApiKey(std::string_view tenant, std::string_view principal,
                                                std::optional<int64_t> lifetime_seconds) {
  if (lifetime_seconds && (*lifetime_seconds < kMinApiKeyLifetimeSeconds ||
                           *lifetime_seconds > kMaxApiKeyLifetimeSeconds)) {
    return Error(Code::kInvalidArgument, "an API key's lifetime must be 1 second to 3650 days");
  }
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    if (!principals_.contains(PrincipalKey{tenant, principal})) {
      return Error(PrincipalNotFound(tenant, principal));
    }
  }
  NewApiKey out;
  ASSIGN_OR_RETURN(out.record.id, RandomId());
  SecretBuffer random(kCredentialSecretBytes);
  RETURN_IF_ERROR(token_.GenerateRandom({random.RevealMutableData(), random.size()}));
  out.secret = CredentialText(kApiKeySecretPrefix, out.record.id, random.RevealSpan());
  const std::string_view secret_text(reinterpret_cast<const char*>(out.secret.RevealData()),
                                     out.secret.size());
  ASSIGN_OR_RETURN(out.record.digest, HmacOf(secret_text));
  out.record.tenant = std::string(tenant);
  out.record.principal = std::string(principal);
  out.record.created_at = clock_.NowSeconds();
  if (lifetime_seconds) out.record.expires_at = out.record.created_at + *lifetime_seconds;
  RETURN_IF_ERROR(store_.WriteAccess(store_change::CreateApiKey{out.record}));
  auto entry = std::make_shared<KeyEntry>();
  entry->record = out.record;
  std::unique_lock lock(mu_);
  keys_[out.record.id] = std::move(entry);
  return out;
}

Result<std::vector<ApiKeyRecord>> AccessDirectory::ListApiKeys(
    std::string_view tenant, std::optional<std::string_view> principal) const {
  std::shared_lock lock(mu_);
  if (principal && !principals_.contains(PrincipalKey{tenant, *principal})) {
    return Error(PrincipalNotFound(tenant, *principal));
  }
  std::vector<ApiKeyRecord> out;
  for (const auto& [id, entry] : keys_) {
    const ApiKeyRecord& record = entry->record;
    if (record.tenant != tenant || (principal && record.principal != *principal)) continue;
    out.push_back(record);
    if (int64_t used = entry->last_used.load(); used > 0) out.back().last_used_at = used;
  }
  return out;
}

Result<ApiKeyRecord> AccessDirectory::RevokeApiKey(std::string_view tenant, std::string_view id) {
  std::lock_guard write(write_mu_);
  std::shared_ptr<KeyEntry> entry;
  {
    std::shared_lock lock(mu_);
    auto it = keys_.find(id);
    if (it == keys_.end() || it->second->record.tenant != tenant) {
      return Error(Code::kNotFound, "API key '" + ShownName(id) + "' not found in tenant '" +
                                        ShownName(tenant) + "'");
    }
    entry = it->second;
    if (entry->record.revoked_at) return entry->record;
  }
  const int64_t now = clock_.NowSeconds();
  RETURN_IF_ERROR(
      store_.WriteAccess(store_change::RevokeApiKey{std::string(tenant), std::string(id), now}));
  std::unique_lock lock(mu_);
  entry->record.revoked_at = now;
  return entry->record;
}

Result<std::string> AccessDirectory::RandomId() const {
  uint8_t id_bytes[kCredentialIdBytes];
  RETURN_IF_ERROR(token_.GenerateRandom(id_bytes));
  std::string id(2 * kCredentialIdBytes, '\0');
  HexEncode(id_bytes, id.data());
  return id;
}

Status AccessDirectory::CheckPrincipalHere(std::string_view tenant, std::string_view name) const {
  if (!principals_.contains(PrincipalKey{tenant, name})) return PrincipalNotFound(tenant, name);
  return OkStatus();
}

Result<Bytes> AccessDirectory::HmacOf(std::string_view secret) const {
  return token_.HmacSha256(hmac_key_, BytesOf(secret));
}

Status AccessDirectory::CheckUsable(const KeyEntry& entry, int64_t now) const {
  switch (StateOf(entry.record, now)) {
    case ApiKeyState::kActive:
      return OkStatus();
    case ApiKeyState::kRevoked:
      return Status(Code::kAccessDenied, "API key " + entry.record.id + " was revoked");
    case ApiKeyState::kExpired:
      return Status(Code::kAccessDenied, "API key " + entry.record.id + " has expired");
  }
  return NotValid();
}

Result<AuthenticatedKey> AccessDirectory::Authenticate(std::string_view secret, bool* guessed) {
  auto guess = [guessed] {
    if (guessed != nullptr) *guessed = true;
    return Error(NotValid());
  };
  const std::optional<std::string_view> id = IdOf(secret);
  if (!id) return guess();
  const int64_t now = clock_.NowSeconds();
  Digest digest = Sha256Of(secret);
  std::shared_ptr<KeyEntry> entry;
  std::optional<Digest> verified;
  Bytes stored;
  {
    std::shared_lock lock(mu_);
    auto it = keys_.find(*id);
    if (it == keys_.end()) return guess();
    entry = it->second;
    verified = entry->verified;
    // A key that can no longer be used is never worth a token call: without
    // a proof of its secret in memory it is just not valid.
    if (!verified && !CheckUsable(*entry, now).ok()) return Error(NotValid());
    if (!verified) stored = entry->record.digest;
  }
  bool matches = false;
  if (verified) {
    matches = CRYPTO_memcmp(verified->data(), digest.data(), digest.size()) == 0;
  } else {
    // A token that cannot answer says nothing about the secret: its error
    // (TOKEN_UNAVAILABLE) goes back as it is, and nobody is locked out.
    Result<bool> checked = VerifyWithToken(secret, stored);
    if (!checked) {
      OPENSSL_cleanse(digest.data(), digest.size());
      return Error(checked.error());
    }
    matches = *checked;
  }
  if (!matches) {
    OPENSSL_cleanse(digest.data(), digest.size());
    return guess();
  }
  std::shared_ptr<const PrincipalRecord> principal;
  uint64_t generation = 0;
  {
    std::unique_lock lock(mu_);
    // Deleted (with its principal) while the token checked it: a principal
    // made since under the same name is not this key's.
    auto key = keys_.find(*id);
    if (key == keys_.end() || key->second != entry) return Error(NotValid());
    RETURN_IF_ERROR(CheckUsable(*entry, now));
    auto it = principals_.find(PrincipalKey{entry->record.tenant, entry->record.principal});
    if (it == principals_.end()) return Error(NotValid());
    principal = it->second;
    generation = this->generation();  // under the lock: it matches `principal`
    if (!verified) entry->verified = digest;
  }
  entry->last_used.store(now, std::memory_order_relaxed);
  OPENSSL_cleanse(digest.data(), digest.size());
  return AuthenticatedKey{entry->record.id, std::move(principal), generation};
}

Result<AuthenticatedKey> AccessDirectory::AuthenticateProven(std::string_view key_id) {
  const int64_t now = clock_.NowSeconds();
  std::shared_lock lock(mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end() || !it->second->verified) return Error(NotValid());
  const std::shared_ptr<KeyEntry>& entry = it->second;
  RETURN_IF_ERROR(CheckUsable(*entry, now));
  auto principal = principals_.find(PrincipalKey{entry->record.tenant, entry->record.principal});
  if (principal == principals_.end()) return Error(NotValid());
  entry->last_used.store(now, std::memory_order_relaxed);
  return AuthenticatedKey{entry->record.id, principal->second, generation()};
}

bool AccessDirectory::KeyUsable(std::string_view key_id) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(key_id);
  return it != keys_.end() && CheckUsable(*it->second, clock_.NowSeconds()).ok();
}

std::optional<std::string> AccessDirectory::OwnerOfKey(std::string_view secret) const {
  const std::optional<std::string_view> id = IdOf(secret);
  if (!id) return std::nullopt;
  std::shared_lock lock(mu_);
  auto it = keys_.find(*id);
  if (it == keys_.end()) return std::nullopt;
  return it->second->record.tenant + "/" + it->second->record.principal;
}

Result<bool> AccessDirectory::VerifyWithToken(std::string_view secret, const Bytes& stored) const {
  ASSIGN_OR_RETURN(Bytes hmac, HmacOf(secret));
  if (hmac.size() != stored.size()) return false;
  return CRYPTO_memcmp(hmac.data(), stored.data(), stored.size()) == 0;
}

Status AccessDirectory::FlushUsage() {
  std::lock_guard write(write_mu_);
  std::vector<std::shared_ptr<KeyEntry>> changed;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, entry] : keys_) {
      if (entry->last_used.load() > entry->flushed_last_used) changed.push_back(entry);
    }
  }
  for (const auto& entry : changed) {
    const int64_t used = entry->last_used.load();
    RETURN_IF_ERROR(store_.WriteAccess(store_change::ApiKeyUsed{entry->record.id, used}));
    entry->flushed_last_used = used;
  }
  return OkStatus();
}

void AccessDirectory::ForgetTenant(std::string_view tenant) {
  std::lock_guard write(write_mu_);
  std::unique_lock lock(mu_);
  std::erase_if(principals_, [&](const auto& entry) { return entry.first.first == tenant; });
  std::erase_if(keys_, [&](const auto& entry) { return entry.second->record.tenant == tenant; });
  std::erase_if(grants_, [&](const auto& entry) { return entry.second.tenant == tenant; });
  if (auto it = roles_.find(tenant); it != roles_.end()) roles_.erase(it);
  if (auto it = policies_.find(tenant); it != policies_.end()) policies_.erase(it);
  std::erase_if(mfa_seeds_, [&](const auto& entry) { return entry.first.first == tenant; });
  policy_count_.store(policies_.size(), std::memory_order_release);
  RebuildBoundPeers();
  Changed();
}

}  // namespace kmsd
