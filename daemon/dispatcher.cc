#include "daemon/dispatcher.h"

#include <spdlog/spdlog.h>

#include <functional>
#include <limits>
#include <string>
#include <unordered_map>

#include "protocol/frame_scan.h"
#include "protocol/lifecycle_limits.h"
#include "protocol/message.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

constexpr size_t kMaxBatchItems = 1024;
constexpr uint64_t kMaxRandomBytes = 1024;

struct Env;

struct Call {
  const Peer& peer;
  std::string_view tenant;
  const Fields& args;
};

using Handler = Result<Value::Map> (*)(Env&, Call&);

struct Operation {
  bool needs_tenant;
  Handler handler;
  // Also served while the tenant is pending deletion (every other tenant
  // operation is KEY_PENDING_DELETION then).
  bool serves_pending_tenant = false;
};

Value::Map KeyDescription(const KeyInfo& key) {
  Value::Array aliases;
  for (const auto& alias : key.aliases) aliases.emplace_back(alias);
  Value::Map out;
  out.emplace_back("id", KeyIdToHex(key.id));
  out.emplace_back("name", key.name);
  out.emplace_back("tenant", key.tenant);
  out.emplace_back("description", key.description);
  out.emplace_back("created_at", key.created_at);
  out.emplace_back("enabled", key.enabled);
  out.emplace_back("state", KeyStateName(key.state));
  if (key.deletion_date) out.emplace_back("deletion_date", *key.deletion_date);
  out.emplace_back("latest_version", key.latest_version);
  out.emplace_back("min_decryption_version", key.min_decryption_version);
  if (key.rotation_period_seconds) {
    out.emplace_back("rotation_period_seconds", *key.rotation_period_seconds);
    out.emplace_back("next_rotation_at", *key.next_rotation_at);
  }
  out.emplace_back("aliases", std::move(aliases));
  return out;
}

std::string_view TenantState(const TenantInfo& tenant) {
  return tenant.deletion_date ? "pending_deletion" : "active";
}

Value::Map TenantDescription(const TenantInfo& tenant) {
  Value::Map out;
  out.emplace_back("name", tenant.name);
  out.emplace_back("created_at", tenant.created_at);
  out.emplace_back("state", TenantState(tenant));
  if (tenant.deletion_date) out.emplace_back("deletion_date", *tenant.deletion_date);
  out.emplace_back("keys", tenant.key_count);
  out.emplace_back("aliases", tenant.alias_count);
  return out;
}

Value::Map AliasDescription(const AliasInfo& alias) {
  Value::Map out;
  out.emplace_back("alias", alias.alias);
  out.emplace_back("key", alias.key_name);
  out.emplace_back("key_id", KeyIdToHex(alias.key_id));
  out.emplace_back("created_at", alias.created_at);
  out.emplace_back("updated_at", alias.updated_at);
  return out;
}

Value::Map ErrorEntry(const Status& status) {
  Value::Map error;
  error.emplace_back("code", CodeName(status.code()));
  error.emplace_back("message", status.message());
  Value::Map out;
  out.emplace_back("ok", false);
  out.emplace_back("error", std::move(error));
  return out;
}

void AppendKeyFields(Value::Map& out, const KeyId& id, const std::string& name, uint32_t version) {
  out.emplace_back("key_id", KeyIdToHex(id));
  out.emplace_back("key_name", name);
  out.emplace_back("version", version);
}

// Size of a data key: key_spec AES_256 (default) or AES_128, or number_of_bytes.
Result<size_t> DataKeySize(const Fields& args) {
  ASSIGN_OR_RETURN(auto spec, args.OptionalString("key_spec"));
  ASSIGN_OR_RETURN(auto bytes, args.OptionalUint("number_of_bytes"));
  if (spec && bytes) {
    return Error(Code::kInvalidArgument, "give key_spec or number_of_bytes, not both");
  }
  if (bytes) {
    if (*bytes < 1 || *bytes > kMaxRandomBytes) {
      return Error(Code::kInvalidArgument, "number_of_bytes must be 1 to 1024");
    }
    return static_cast<size_t>(*bytes);
  }
  if (!spec || *spec == "AES_256") return size_t{32};
  if (*spec == "AES_128") return size_t{16};
  return Error(Code::kInvalidArgument, "key_spec must be AES_256 or AES_128");
}

struct Env {
  KeyHierarchy& h;
  pkcs11::Token& token;
  std::chrono::steady_clock::time_point started;
  const DispatcherOptions& options;
};

// The pending window of a schedule-deletion, in seconds (PROTOCOL.md):
// pending_window_days, 7 to 30 (default 30), or pending_window_seconds when
// the configuration lowers the minimum below 7 days.
Result<int64_t> PendingWindowSeconds(Env& e, const Fields& args) {
  ASSIGN_OR_RETURN(auto days, args.OptionalUint("pending_window_days"));
  ASSIGN_OR_RETURN(auto seconds, args.OptionalUint("pending_window_seconds"));
  if (days && seconds) {
    return Error(Code::kInvalidArgument,
                 "give pending_window_days or pending_window_seconds, not both");
  }
  if (seconds) {
    const int64_t min = e.h.lifecycle().min_pending_window_seconds;
    if (min >= kDefaultMinPendingWindowSeconds) {
      return Error(Code::kInvalidArgument,
                   "pending_window_seconds is accepted only when kmsd's configuration lowers "
                   "lifecycle.min_pending_window_seconds");
    }
    if (*seconds < static_cast<uint64_t>(min) ||
        *seconds > static_cast<uint64_t>(kMaxPendingWindowSeconds)) {
      return Error(Code::kInvalidArgument, "pending_window_seconds must be " + std::to_string(min) +
                                               " to " + std::to_string(kMaxPendingWindowSeconds));
    }
    return static_cast<int64_t>(*seconds);
  }
  const uint64_t window_days = days.value_or(kDefaultPendingWindowDays);
  if (window_days < static_cast<uint64_t>(kMinPendingWindowDays) ||
      window_days > static_cast<uint64_t>(kMaxPendingWindowDays)) {
    return Error(Code::kInvalidArgument, "pending_window_days must be " +
                                             std::to_string(kMinPendingWindowDays) + " to " +
                                             std::to_string(kMaxPendingWindowDays));
  }
  return static_cast<int64_t>(window_days) * kSecondsPerDay;
}

Result<Value::Map> SetKeyEnabled(Env& e, Call& c, bool enabled) {
  RETURN_IF_ERROR(c.args.OnlyKnown({"key"}));
  ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
  ASSIGN_OR_RETURN(KeyInfo info, e.h.SetKeyEnabled(c.tenant, key, enabled));
  return KeyDescription(info);
}

Result<Value::Map> EncryptOne(Env& e, std::string_view tenant, std::string_view key,
                              std::span<const uint8_t> plaintext,
                              const EncryptionContext& context) {
  ASSIGN_OR_RETURN(EncryptOutput out, e.h.Encrypt(tenant, key, plaintext, context));
  Value::Map result;
  result.emplace_back("ciphertext", std::move(out.ciphertext));
  AppendKeyFields(result, out.key_id, out.key_name, out.version);
  return result;
}

Result<Value::Map> DecryptOne(Env& e, std::string_view tenant, std::span<const uint8_t> ciphertext,
                              const EncryptionContext& context,
                              std::optional<std::string_view> expected_key) {
  ASSIGN_OR_RETURN(DecryptOutput out, e.h.Decrypt(tenant, ciphertext, context, expected_key));
  Value::Map result;
  result.emplace_back("plaintext", std::move(out.plaintext));
  AppendKeyFields(result, out.key_id, out.key_name, out.version);
  return result;
}

// Decrypts `ciphertext` and encrypts its plaintext under the newest version of
// `destination` (by default the ciphertext's own key).
Result<Value::Map> ReEncryptOne(Env& e, std::string_view tenant,
                                std::span<const uint8_t> ciphertext,
                                const EncryptionContext& context,
                                std::optional<std::string_view> destination,
                                const EncryptionContext& destination_context) {
  if (destination) RETURN_IF_ERROR(ValidateKeyReference(*destination));
  ASSIGN_OR_RETURN(DecryptOutput source, e.h.Decrypt(tenant, ciphertext, context, std::nullopt));
  const std::string target = destination ? std::string(*destination) : source.key_name;
  ASSIGN_OR_RETURN(Value::Map result, EncryptOne(e, tenant, target, source.plaintext.RevealSpan(),
                                                 destination_context));
  result.emplace_back("source_key_id", KeyIdToHex(source.key_id));
  result.emplace_back("source_version", source.version);
  return result;
}

// The `items` of a batch call (1 to kMaxBatchItems maps), each handled by
// `one(fields)`; a failed item becomes an error entry, the others go on.
// `check()` runs once the items are known to be well formed: what it refuses
// (an unknown tenant or key) fails the whole call rather than every item alike.
template <typename Check, typename One>
Result<Value::Map> ForEachItem(const Fields& args, Check&& check, One&& one) {
  ASSIGN_OR_RETURN(auto items, args.Array("items"));
  if (items.empty() || items.size() > kMaxBatchItems) {
    return Error(Code::kInvalidArgument, "items must hold 1 to 1024 entries");
  }
  RETURN_IF_ERROR(check());
  Value::Array results;
  for (const auto& item : items) {
    auto result = [&]() -> Result<Value::Map> {
      ASSIGN_OR_RETURN(Fields fields, Fields::Of(item, "item"));
      ASSIGN_OR_RETURN(Value::Map entry, one(fields));
      entry.insert(entry.begin(), {"ok", true});
      return entry;
    }();
    results.emplace_back(result ? std::move(*result) : ErrorEntry(result.error()));
  }
  Value::Map out;
  out.emplace_back("results", std::move(results));
  return out;
}

Result<Value::Map> GenerateDataKey(Env& e, Call& c, bool with_plaintext) {
  RETURN_IF_ERROR(c.args.OnlyKnown({"key", "context", "key_spec", "number_of_bytes"}));
  ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
  ASSIGN_OR_RETURN(EncryptionContext context, c.args.Context("context"));
  ASSIGN_OR_RETURN(size_t size, DataKeySize(c.args));
  SecretBuffer data_key(size);
  RETURN_IF_ERROR(e.token.GenerateRandom({data_key.RevealMutableData(), data_key.size()}));
  ASSIGN_OR_RETURN(EncryptOutput out, e.h.Encrypt(c.tenant, key, data_key.RevealSpan(), context));
  Value::Map result;
  if (with_plaintext) result.emplace_back("plaintext", std::move(data_key));
  result.emplace_back("ciphertext", std::move(out.ciphertext));
  AppendKeyFields(result, out.key_id, out.key_name, out.version);
  return result;
}

const std::unordered_map<std::string_view, Operation>& Operations() {
  static const auto* const kOperations = new std::unordered_map<std::string_view, Operation>{
      {"status",
       {false,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          const auto& info = e.token.info();
          Value::Map token_map;
          token_map.emplace_back("label", info.label);
          token_map.emplace_back("manufacturer", info.manufacturer);
          token_map.emplace_back("model", info.model);
          token_map.emplace_back("available", e.token.Ping().ok());
          Value::Map keystore;
          keystore.emplace_back("backend", "sqlite");
          keystore.emplace_back("schema_version", e.h.store().SchemaVersion());
          Value::Map out;
          out.emplace_back("version", KMSD_VERSION);
          out.emplace_back("protocol", kProtocolVersion);
          out.emplace_back("token", std::move(token_map));
          out.emplace_back("keystore", std::move(keystore));
          out.emplace_back("tenants", e.h.TenantCount());
          out.emplace_back("keys", e.h.KeyCount());
          out.emplace_back("uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(
                                                 std::chrono::steady_clock::now() - e.started)
                                                 .count());
          out.emplace_back("refused_connections", e.options.gate ? e.options.gate->refused() : uint64_t{0});
          return out;
        }}},
      {"health",
       {false,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          RETURN_IF_ERROR(e.token.Ping());
          Value::Map out;
          out.emplace_back("healthy", true);
          return out;
        }}},
      {"keystore.backup",
       {false,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"path"}));
          ASSIGN_OR_RETURN(std::string_view requested, c.args.String("path"));
          if (!e.options.backups) {
            return Error(Code::kInternal, "kmsd has no backup directory");
          }
          ASSIGN_OR_RETURN(std::string path, e.options.backups->Resolve(requested));
          ASSIGN_OR_RETURN(KeyStoreCopyInfo info, e.h.BackupStore(path));
          Value::Map out;
          out.emplace_back("path", info.path);
          out.emplace_back("bytes", info.bytes);
          out.emplace_back("schema_version", info.schema_version);
          out.emplace_back("tenants", info.tenants);
          out.emplace_back("keys", info.keys);
          return out;
        }}},
      {"tenant.create",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          ASSIGN_OR_RETURN(TenantInfo info, e.h.CreateTenant(c.tenant));
          return TenantDescription(info);
        },
        true}},
      {"tenant.describe",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          ASSIGN_OR_RETURN(TenantInfo info, e.h.DescribeTenant(c.tenant));
          return TenantDescription(info);
        },
        true}},
      {"tenant.schedule-deletion",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"pending_window_days", "pending_window_seconds"}));
          ASSIGN_OR_RETURN(int64_t window, PendingWindowSeconds(e, c.args));
          ASSIGN_OR_RETURN(TenantInfo info, e.h.ScheduleTenantDeletion(c.tenant, window));
          return TenantDescription(info);
        }}},
      {"tenant.cancel-deletion",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          ASSIGN_OR_RETURN(TenantInfo info, e.h.CancelTenantDeletion(c.tenant));
          return TenantDescription(info);
        },
        true}},
      {"tenant.list",
       {false,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          Value::Array tenants;
          for (const auto& tenant : e.h.ListTenants()) {
            Value::Map entry;
            entry.emplace_back("name", tenant.name);
            entry.emplace_back("created_at", tenant.created_at);
            entry.emplace_back("state", TenantState(tenant));
            tenants.emplace_back(std::move(entry));
          }
          Value::Map out;
          out.emplace_back("tenants", std::move(tenants));
          return out;
        }}},
      {"key.create",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"name", "description"}));
          ASSIGN_OR_RETURN(std::string_view name, c.args.String("name"));
          ASSIGN_OR_RETURN(auto description, c.args.OptionalString("description"));
          ASSIGN_OR_RETURN(KeyInfo key, e.h.CreateKey(c.tenant, name, description.value_or("")));
          return KeyDescription(key);
        }}},
      {"key.describe",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(KeyInfo info, e.h.DescribeKey(c.tenant, key));
          return KeyDescription(info);
        }}},
      {"key.list",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          ASSIGN_OR_RETURN(std::vector<KeyInfo> keys, e.h.ListKeys(c.tenant));
          Value::Array list;
          for (const auto& key : keys) list.emplace_back(KeyDescription(key));
          Value::Map out;
          out.emplace_back("keys", std::move(list));
          return out;
        }}},
      {"key.rotate",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(KeyInfo info, e.h.RotateKey(c.tenant, key));
          return KeyDescription(info);
        }}},
      {"key.enable", {true, [](Env& e, Call& c) { return SetKeyEnabled(e, c, true); }}},
      {"key.disable", {true, [](Env& e, Call& c) { return SetKeyEnabled(e, c, false); }}},
      {"key.schedule-deletion",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(
              c.args.OnlyKnown({"key", "pending_window_days", "pending_window_seconds"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(int64_t window, PendingWindowSeconds(e, c.args));
          ASSIGN_OR_RETURN(KeyInfo info, e.h.ScheduleKeyDeletion(c.tenant, key, window));
          return KeyDescription(info);
        }}},
      {"key.cancel-deletion",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(KeyInfo info, e.h.CancelKeyDeletion(c.tenant, key));
          return KeyDescription(info);
        }}},
      {"key.set-rotation",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key", "rotation_period_seconds"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(uint64_t period, c.args.Uint("rotation_period_seconds"));
          if (period > static_cast<uint64_t>(kMaxRotationPeriodSeconds)) {
            return Error(Code::kInvalidArgument,
                         "rotation_period_seconds must be at most " +
                             std::to_string(kMaxRotationPeriodSeconds) + " (0 turns it off)");
          }
          std::optional<int64_t> seconds;
          if (period != 0) seconds = static_cast<int64_t>(period);
          ASSIGN_OR_RETURN(KeyInfo info, e.h.SetRotationPeriod(c.tenant, key, seconds));
          return KeyDescription(info);
        }}},
      {"key.set-min-decryption-version",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key", "version"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(uint64_t version, c.args.Uint("version"));
          if (version < 1 || version > std::numeric_limits<uint32_t>::max()) {
            return Error(Code::kInvalidArgument, "version must be 1 to 4294967295");
          }
          ASSIGN_OR_RETURN(KeyInfo info, e.h.SetMinDecryptionVersion(c.tenant, key,
                                                                     static_cast<uint32_t>(version)));
          return KeyDescription(info);
        }}},
      {"key.list-versions",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(std::vector<VersionInfo> versions, e.h.ListVersions(c.tenant, key));
          Value::Array list;
          for (const auto& version : versions) {
            Value::Map entry;
            entry.emplace_back("version", version.version);
            entry.emplace_back("created_at", version.created_at);
            entry.emplace_back("encryptions", version.encryptions);
            list.emplace_back(std::move(entry));
          }
          Value::Map out;
          out.emplace_back("versions", std::move(list));
          return out;
        }}},
      {"alias.create",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"alias", "key"}));
          ASSIGN_OR_RETURN(std::string_view alias, c.args.String("alias"));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(AliasInfo info, e.h.CreateAlias(c.tenant, alias, key));
          return AliasDescription(info);
        }}},
      {"alias.update",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"alias", "key"}));
          ASSIGN_OR_RETURN(std::string_view alias, c.args.String("alias"));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(AliasInfo info, e.h.UpdateAlias(c.tenant, alias, key));
          return AliasDescription(info);
        }}},
      {"alias.delete",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"alias"}));
          ASSIGN_OR_RETURN(std::string_view alias, c.args.String("alias"));
          RETURN_IF_ERROR(e.h.DeleteAlias(c.tenant, alias));
          return Value::Map{};
        }}},
      {"alias.list",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({}));
          ASSIGN_OR_RETURN(std::vector<AliasInfo> aliases, e.h.ListAliases(c.tenant));
          Value::Array list;
          for (const auto& alias : aliases) list.emplace_back(AliasDescription(alias));
          Value::Map out;
          out.emplace_back("aliases", std::move(list));
          return out;
        }}},
      {"encrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key", "plaintext", "context"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          ASSIGN_OR_RETURN(auto plaintext, c.args.Binary("plaintext"));
          ASSIGN_OR_RETURN(EncryptionContext context, c.args.Context("context"));
          return EncryptOne(e, c.tenant, key, plaintext, context);
        }}},
      {"decrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"ciphertext", "context", "key"}));
          ASSIGN_OR_RETURN(auto ciphertext, c.args.Binary("ciphertext"));
          ASSIGN_OR_RETURN(EncryptionContext context, c.args.Context("context"));
          ASSIGN_OR_RETURN(auto key, c.args.OptionalString("key"));
          return DecryptOne(e, c.tenant, ciphertext, context, key);
        }}},
      {"re-encrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown(
              {"ciphertext", "context", "destination_key", "destination_context"}));
          ASSIGN_OR_RETURN(auto ciphertext, c.args.Binary("ciphertext"));
          ASSIGN_OR_RETURN(EncryptionContext context, c.args.Context("context"));
          ASSIGN_OR_RETURN(auto destination, c.args.OptionalString("destination_key"));
          EncryptionContext destination_context = context;
          if (c.args.Has("destination_context")) {
            ASSIGN_OR_RETURN(destination_context, c.args.Context("destination_context"));
          }
          return ReEncryptOne(e, c.tenant, ciphertext, context, destination, destination_context);
        }}},
      {"batch-encrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"key", "items"}));
          ASSIGN_OR_RETURN(std::string_view key, c.args.String("key"));
          auto check = [&] { return StatusOf(e.h.DescribeKey(c.tenant, key)); };
          return ForEachItem(c.args, check, [&](const Fields& fields) -> Result<Value::Map> {
            RETURN_IF_ERROR(fields.OnlyKnown({"plaintext", "context"}));
            ASSIGN_OR_RETURN(auto plaintext, fields.Binary("plaintext"));
            ASSIGN_OR_RETURN(EncryptionContext context, fields.Context("context"));
            ASSIGN_OR_RETURN(EncryptOutput out, e.h.Encrypt(c.tenant, key, plaintext, context));
            Value::Map entry;
            entry.emplace_back("ciphertext", std::move(out.ciphertext));
            entry.emplace_back("version", out.version);
            return entry;
          });
        }}},
      {"batch-decrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"items"}));
          auto check = [&] { return StatusOf(e.h.DescribeTenant(c.tenant)); };
          return ForEachItem(c.args, check, [&](const Fields& fields) -> Result<Value::Map> {
            RETURN_IF_ERROR(fields.OnlyKnown({"ciphertext", "context"}));
            ASSIGN_OR_RETURN(auto ciphertext, fields.Binary("ciphertext"));
            ASSIGN_OR_RETURN(EncryptionContext context, fields.Context("context"));
            return DecryptOne(e, c.tenant, ciphertext, context, std::nullopt);
          });
        }}},
      {"batch-re-encrypt",
       {true,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"items", "destination_key"}));
          ASSIGN_OR_RETURN(auto destination, c.args.OptionalString("destination_key"));
          auto check = [&] {
            return destination ? StatusOf(e.h.DescribeKey(c.tenant, *destination))
                               : StatusOf(e.h.DescribeTenant(c.tenant));
          };
          return ForEachItem(c.args, check, [&](const Fields& fields) -> Result<Value::Map> {
            RETURN_IF_ERROR(fields.OnlyKnown({"ciphertext", "context"}));
            ASSIGN_OR_RETURN(auto ciphertext, fields.Binary("ciphertext"));
            ASSIGN_OR_RETURN(EncryptionContext context, fields.Context("context"));
            return ReEncryptOne(e, c.tenant, ciphertext, context, destination, context);
          });
        }}},
      {"generate-data-key", {true, [](Env& e, Call& c) { return GenerateDataKey(e, c, true); }}},
      {"generate-data-key-without-plaintext",
       {true, [](Env& e, Call& c) { return GenerateDataKey(e, c, false); }}},
      {"generate-random",
       {false,
        [](Env& e, Call& c) -> Result<Value::Map> {
          RETURN_IF_ERROR(c.args.OnlyKnown({"number_of_bytes"}));
          ASSIGN_OR_RETURN(uint64_t n, c.args.Uint("number_of_bytes"));
          if (n < 1 || n > kMaxRandomBytes) {
            return Error(Code::kInvalidArgument, "number_of_bytes must be 1 to 1024");
          }
          Bytes random(n);
          RETURN_IF_ERROR(e.token.GenerateRandom(random));
          Value::Map out;
          out.emplace_back("random", std::move(random));
          return out;
        }}},
  };
  return *kOperations;
}

}  // namespace

Dispatcher::Dispatcher(KeyHierarchy& hierarchy, pkcs11::Token& token, const AccessPolicy& access,
                       DispatcherOptions options)
    : hierarchy_(hierarchy),
      token_(token),
      access_(access),
      options_(options),
      started_(std::chrono::steady_clock::now()) {}

WipingBuffer Dispatcher::Handle(const Peer& peer, std::span<const uint8_t> frame) {
  const auto begin = std::chrono::steady_clock::now();
  std::optional<uint64_t> id;
  std::string_view op_for_log = "-";
  std::string_view tenant_for_log = "-";
  Result<Value::Map> result = [&]() -> Result<Value::Map> {
    if (frame.size() > options_.max_frame_bytes) {
      return Error(Code::kFrameTooLarge, "request frame of " + std::to_string(frame.size()) +
                                             " bytes is over the limit of " +
                                             std::to_string(options_.max_frame_bytes));
    }
    // Before anything is built from the frame: its shape and size in values,
    // then the caller's right to the op it names (DESIGN.md, request path).
    ASSIGN_OR_RETURN(ScannedRequest scanned, ScanRequestFrame(frame));
    const std::string_view scanned_op = scanned.op.value_or("");
    const std::string_view scanned_tenant = scanned.tenant.value_or("");
    if (Status allowed = access_.Authorize(peer, scanned_op, scanned_tenant); !allowed.ok()) {
      id = scanned.id;
      if (auto known = Operations().find(scanned_op); known != Operations().end()) {
        op_for_log = known->first;
      }
      return Error(std::move(allowed));
    }
    ASSIGN_OR_RETURN(Frame decoded, Frame::Decode(frame));
    ASSIGN_OR_RETURN(RequestEnvelope request, ParseRequest(decoded.root(), &id));
    if (request.op != scanned_op || request.tenant != scanned_tenant) {
      // The scan refuses repeated envelope keys, so both passes read the same.
      return Error(Code::kInternal, "request envelope read differently by scan and decode");
    }
    auto operation = Operations().find(request.op);
    if (operation == Operations().end()) {
      return Error(Code::kUnknownOperation,
                   "unknown operation '" + std::string(request.op.substr(0, 64)) + "'");
    }
    op_for_log = operation->first;
    if (operation->second.needs_tenant) {
      if (request.tenant.empty()) {
        return Error(Code::kInvalidArgument, "operation '" + std::string(request.op) +
                                                 "' needs the request's 'tenant' field");
      }
      RETURN_IF_ERROR(ValidateTenantName(request.tenant));
      tenant_for_log = request.tenant;
    } else if (!request.tenant.empty()) {
      return Error(Code::kInvalidArgument,
                   "operation '" + std::string(request.op) + "' takes no tenant");
    }
    if (operation->second.needs_tenant && !operation->second.serves_pending_tenant) {
      RETURN_IF_ERROR(hierarchy_.CheckNotPendingDeletion(request.tenant));
    }
    Env env{hierarchy_, token_, started_, options_};
    Call call{peer, request.tenant, request.args};
    return operation->second.handler(env, call);
  }();
  const Status status = result ? OkStatus() : result.error();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - begin)
                          .count();
  // Identifiers only: never arguments, results or the frame.
  if (status.ok()) {
    spdlog::info("request id={} op={} tenant={} uid={} pid={} code=OK us={}", id.value_or(0),
                 op_for_log, tenant_for_log, peer.uid, peer.pid, micros);
    return EncodeOkReply(*id, std::move(*result));
  }
  spdlog::warn("request id={} op={} tenant={} uid={} pid={} code={} us={}", id.value_or(0),
               op_for_log, tenant_for_log, peer.uid, peer.pid, CodeName(status.code()), micros);
  return EncodeErrorReply(id, status);
}

}  // namespace kmsd
