// Handlers: one function per operation, grouped by family in this directory
// (service, tenants, keys, aliases, lifecycle, crypto, access, roles and
// grants, tenant policies, sessions and MFA), and the table that finds them by OpId.
//
// A handler receives its decoded request (protocol/operation_types.h) and a
// Call: the tenant, the services it may use, and the request's context,
// where it notes the keys and versions it touched. It returns its typed
// reply; HandlerTable::Add wraps it with the decoding and encoding. A handler
// that acts on more than the request's own resource (a batch's items,
// re-encrypt's destination) asks Call::Authorize for each: the same
// authorize stage as the request's. Handlers never log and never keep
// request data. Thread-safe: the table is built once, then only read.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <functional>
#include <optional>
#include <string_view>

#include "daemon/request_context.h"
#include "keystore/backup_directory.h"
#include "keystore/hierarchy.h"
#include "pkcs11/token.h"
#include "protocol/codec.h"
#include "protocol/operation_types.h"

namespace kmsd {
namespace audit {
class Log;
class Sealer;
}  // namespace audit

class Alerts;
class AuthLockout;
class PeerGate;
class ReloadState;
class RequestMetrics;
class SessionTable;
class TenantRules;

// What handlers use. Outlives every request; never null in kmsd (tests of
// stages that never reach a handler leave them null).
struct ServiceDeps {
  KeyHierarchy* hierarchy = nullptr;
  pkcs11::Token* token = nullptr;
  // Where keystore.backup writes; without one, keystore.backup is refused.
  std::optional<BackupDirectory> backups;
  // Where `status` reads the count of refused connections; may be null.
  const PeerGate* gate = nullptr;
  // Tenant policies and their quotas; without them, tenant.put-policy and
  // tenant.get-policy are refused and no quota applies.
  TenantRules* rules = nullptr;
  // Sessions and failed attempts; without them, the session operations are
  // refused.
  SessionTable* sessions = nullptr;
  AuthLockout* lockout = nullptr;
  // The audit log and its seals in the token; without them, audit.verify is
  // refused.
  audit::Log* audit_log = nullptr;
  audit::Sealer* audit_sealer = nullptr;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Requests counted by the record stage, and the last reload, for `status`;
  // may be null.
  RequestMetrics* metrics = nullptr;
  const ReloadState* reload = nullptr;
  // Alerts raised from requests' outcomes by the record stage; may be null.
  Alerts* alerts = nullptr;
};

// The authorize stage, as handlers reach it for one key or alias.
using ItemAuthorizer =
    std::function<Status(RequestContext&, Permission permission, const ResourceFacts& resource)>;

class Call {
 public:
  Call(ServiceDeps& deps, RequestContext& context, const ItemAuthorizer& authorize)
      : deps_(deps), context_(context), authorize_(authorize) {}
  std::string_view tenant() const { return context_.tenant; }
  // The tenant principal calling, or nullptr for an admin.
  const PrincipalIdentity* principal() const {
    return context_.principal ? &*context_.principal : nullptr;
  }
  const Peer& caller() const { return context_.caller; }
  KeyHierarchy& hierarchy() { return *deps_.hierarchy; }
  pkcs11::Token& token() { return *deps_.token; }
  ServiceDeps& deps() { return deps_; }
  // OK or ACCESS_DENIED for `permission` on the key `key_ref` names (NOT_FOUND
  // when it names none and the caller holds the permission on some keys
  // only); `context` is the request's encryption context, for grants.
  Status AuthorizeKey(Permission permission, std::string_view key_ref,
                      const EncryptionContext* context = nullptr);
  // The same for the key a ciphertext names (by id).
  Status AuthorizeKeyId(Permission permission, const KeyId& key_id,
                        const EncryptionContext* context);
  // The same for an alias.
  Status AuthorizeAlias(Permission permission, std::string_view alias);
  void Touched(const std::string& key_id, const std::string& key_name, uint64_t version,
               std::string_view role = {}) {
    context_.keys.push_back({key_id, key_name, version, role, item_});
  }
  // Batch items: what follows belongs to item `index`, until ItemDone.
  void BeginItem(uint32_t index) { item_ = index; }
  void ItemDone(Code outcome) {
    context_.item_outcomes.push_back(outcome);
    item_.reset();
  }

 private:
  // True when the caller holds `permission` only on some keys or aliases:
  // then the resource must be looked up to decide.
  bool NeedsFacts(Permission permission) const;
  Status AuthorizeFound(Permission permission, Result<KeyInfo> key,
                        const EncryptionContext* context);

  ServiceDeps& deps_;
  RequestContext& context_;
  const ItemAuthorizer& authorize_;
  std::optional<uint32_t> item_;
};

// Whether HandlerTable::Add checks the request's key or alias itself, before
// the handler runs: the default for operations on a key named in `key` (with
// the request's `context`, if any) or an alias named in `alias`. Operations
// whose key comes from a ciphertext, or whose items carry their own context,
// check each key in the handler (kHandlerChecks).
enum class ResourceCheck { kByTable, kHandlerChecks };

using Handler = Result<Value::Map> (*)(Call& call, const Fields& args);

class HandlerTable {
 public:
  // Registers `Fn`: Result<Op::Reply> Fn(Call&, const Op::Request&).
  template <typename Op, auto Fn, ResourceCheck kCheck = ResourceCheck::kByTable>
  void Add() {
    handlers_[static_cast<size_t>(Op::kId)] = [](Call& call,
                                                 const Fields& args) -> Result<Value::Map> {
      ASSIGN_OR_RETURN(typename Op::Request request, Decode<typename Op::Request>(args));
      if constexpr (kCheck == ResourceCheck::kByTable) {
        RETURN_IF_ERROR(CheckResource<Op>(call, request));
      }
      ASSIGN_OR_RETURN(typename Op::Reply reply, Fn(call, request));
      return Encode(std::move(reply));
    };
  }
  Handler Find(OpId id) const { return handlers_[static_cast<size_t>(id)]; }
  // The first operation without a handler, if any.
  std::optional<OpId> Missing() const;

 private:
  template <typename Op>
  static Status CheckResource(Call& call, const typename Op::Request& request) {
    constexpr const OperationInfo& kInfo = kOperationTable[static_cast<size_t>(Op::kId)];
    if constexpr (kInfo.resource == Resource::kKey) {
      static_assert(
          requires { std::string_view(request.key); },
          "an operation on a key names it in `key`, or its handler checks it");
      if constexpr (requires {
                      { request.context } -> std::convertible_to<const EncryptionContext&>;
                    }) {
        return call.AuthorizeKey(kInfo.permission, request.key, &request.context);
      } else {
        return call.AuthorizeKey(kInfo.permission, request.key);
      }
    } else if constexpr (kInfo.resource == Resource::kAlias) {
      RETURN_IF_ERROR(call.AuthorizeAlias(kInfo.permission, request.alias));
      // Pointing an alias at a key needs the permission on the key too.
      if constexpr (requires { std::string_view(request.key); }) {
        return call.AuthorizeKey(kInfo.permission, request.key);
      }
      return OkStatus();
    } else {
      return OkStatus();
    }
  }

  std::array<Handler, kOperationCount> handlers_{};
};

// Every operation's handler.
HandlerTable AllHandlers();

void AddServiceHandlers(HandlerTable& table);
void AddTenantHandlers(HandlerTable& table);
void AddKeyHandlers(HandlerTable& table);
void AddAliasHandlers(HandlerTable& table);
void AddLifecycleHandlers(HandlerTable& table);
void AddCryptoHandlers(HandlerTable& table);
void AddAccessHandlers(HandlerTable& table);
void AddRoleAndGrantHandlers(HandlerTable& table);
void AddPolicyHandlers(HandlerTable& table);
void AddAuditHandlers(HandlerTable& table);
void AddSessionHandlers(HandlerTable& table);

// Shared by the families: descriptions as the protocol shows them.
ops::KeyDescription DescribeKey(const KeyInfo& key);
ops::TenantDescription DescribeTenant(const TenantInfo& tenant);
std::string_view TenantState(const TenantInfo& tenant);
// INVALID_ARGUMENT unless 1 <= number_of_bytes <= kMaxRandomBytes.
Status CheckNumberOfBytes(uint64_t number_of_bytes);

}  // namespace kmsd
